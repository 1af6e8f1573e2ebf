"""Seed G1-G4 with version 1 of their templates: the default criteria of DESIGN.md §1.

The data is copied here rather than imported from app code, so this migration keeps producing
the same rows however the app changes later.
"""

from django.db import migrations

A, E = "automatic", "evidence"

# Every gate: the stage's own milestones closed, and no open condition from an earlier gate.
COMMON = [
    ("stage-milestones-closed", "All milestones of the stage are done or waived", A,
     "stage_milestones_closed", True, []),
    ("no-open-gate-conditions", "No open conditions from an earlier Conditional Go", A,
     "no_open_gate_conditions", True, []),
]

GATES = [
    {
        "code": "G1",
        "name": "Pilot",
        "from_stage": "proposed",
        "to_stage": "pilot",
        "sla": 5,
        "expected_stage_days": 90,
        "approvers": [("business_owner", []), ("pmo", [])],
        "criteria": [
            ("business-owner-from-business-line",
             "A business owner from the business line that will use it is assigned", A,
             "business_owner_from_business_line", True, []),
            ("metrics-baseline-target", "Success metrics with baseline and target", A,
             "metric_with_baseline_and_target", True, []),
            ("target-workflow-named", "Target workflow named", A, "target_workflow_named",
             True, []),
            ("pilot-scope-exit-criteria", "Pilot scope and exit criteria", E, "", True, []),
            *COMMON,
        ],
    },
    {
        "code": "G2",
        "name": "Integration",
        "from_stage": "pilot",
        "to_stage": "integration",
        "sla": 5,
        "expected_stage_days": 120,
        "approvers": [
            ("business_owner", []), ("risk", []), ("platform", []), ("security", ["high"]),
        ],
        "criteria": [
            ("pilot-results-against-metrics", "Pilot results against the metrics", A,
             "pilot_results_measured", True, []),
            ("workflow-redesign-documented",
             "Workflow redesign documented (handoffs, edge cases, human review)", E, "", True, []),
            ("integration-plan",
             "Integration plan (data sources, approval flows, downstream systems)", E, "", True,
             []),
            ("business-line-accepts-ownership", "Business line accepts ownership", E, "", True,
             []),
            ("security-review", "Security review passed", E, "", True, ["high"]),
            *COMMON,
        ],
    },
    {
        "code": "G3",
        "name": "Hardening",
        "from_stage": "integration",
        "to_stage": "hardening",
        "sla": 5,
        "expected_stage_days": 60,
        "approvers": [("business", []), ("platform", []), ("risk", [])],
        "criteria": [
            ("integrated-end-to-end-staging", "Integrated end to end in staging", E, "", True, []),
            ("tested-with-real-users", "Tested with real users", E, "", True, []),
            ("runbook-drafted", "Runbook drafted", E, "", True, []),
            *COMMON,
        ],
    },
    {
        "code": "G4",
        "name": "Operations",
        "from_stage": "hardening",
        "to_stage": "operations",
        "sla": 5,
        # Operations has no planned end, so no stall threshold.
        "expected_stage_days": None,
        "approvers": [("business", []), ("platform", []), ("risk", []), ("security", ["high"])],
        "criteria": [
            ("deployment-pipeline", "Deployment pipeline", E, "", True, []),
            ("monitoring-alerting", "Monitoring and alerting", E, "", True, []),
            ("version-control",
             "Model, data and config under version control", E, "", True, []),
            ("rollback-rehearsed", "Rollback rehearsed", E, "", True, []),
            ("security-review", "Security review passed", E, "", True, []),
            ("support-owner-named", "Support owner named", E, "", True, []),
            ("metrics-tracked-in-production", "Success metrics tracked in production", E, "",
             True, []),
            *COMMON,
        ],
    },
]


def seed(apps, schema_editor):
    Gate = apps.get_model("gates", "Gate")
    GateTemplate = apps.get_model("gates", "GateTemplate")
    Criterion = apps.get_model("gates", "Criterion")
    ApproverRule = apps.get_model("gates", "ApproverRule")
    for spec in GATES:
        gate, _ = Gate.objects.get_or_create(
            code=spec["code"],
            defaults={
                "name": spec["name"],
                "from_stage": spec["from_stage"],
                "to_stage": spec["to_stage"],
            },
        )
        if GateTemplate.objects.filter(gate=gate).exists():
            continue
        template = GateTemplate.objects.create(
            gate=gate,
            version=1,
            quorum_policy="all",
            decision_sla_business_days=spec["sla"],
            expected_stage_days=spec["expected_stage_days"],
            note="Default criteria (DESIGN.md §1).",
        )
        for position, (code, text, kind, check, required, tiers) in enumerate(
            spec["criteria"], start=1
        ):
            Criterion.objects.create(
                template=template,
                position=position,
                code=code,
                text=text,
                kind=kind,
                check_name=check,
                required=required,
                risk_tiers=tiers,
            )
        for role, tiers in spec["approvers"]:
            ApproverRule.objects.create(template=template, role=role, risk_tiers=tiers)


class Migration(migrations.Migration):
    dependencies = [("gates", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
