FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.lock ./
RUN pip install --no-cache-dir -r requirements.lock
COPY . .
RUN SECRET_KEY=collectstatic-only DJANGO_DEBUG=0 python manage.py collectstatic --noinput
RUN useradd --create-home gatekeeper && mkdir -p var && chown -R gatekeeper var
USER gatekeeper
EXPOSE 8000
CMD ["gunicorn", "gatekeeper.wsgi", "--bind", "0.0.0.0:8000"]
