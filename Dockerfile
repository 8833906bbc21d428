# One image for all five services; the command picks the service.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
# DejaVu Sans: the letters' lines in Arabic, Ukrainian and Polish (services/dispatch/domain/letters.py);
# the letters' own font, Vera, has no Arabic or Cyrillic.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core && rm -rf /var/lib/apt/lists/*

# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml ./
RUN mkdir -p shared services && touch shared/__init__.py services/__init__.py \
    && pip install . && pip uninstall -y borgerblik

COPY shared ./shared
COPY services ./services
COPY deploy/dev-clients.json ./deploy/dev-clients.json
# Served by analytics at /method, linked from its OpenAPI description and $metadata.
COPY docs/analytics-method.md ./docs/analytics-method.md
RUN pip install --no-deps . \
    && useradd --system --uid 10001 borgerblik
USER borgerblik

EXPOSE 8000
# TRUSTED_PROXIES: the addresses (or CIDR ranges) of the reverse proxies in front of the service,
# comma-separated. Only a request from one of them has its X-Forwarded-For / X-Forwarded-Proto
# believed: the client address is what the guessing and login limits count by, so with an
# empty or wrong list every citizen behind the proxy would share one budget, and with "*" any
# caller could pick its own address. Default: none (the peer's address is the client's).
ENV TRUSTED_PROXIES=""
# e.g. SERVICE=ingest; migrations run as a separate step: python -m shared.migrate ingest
CMD ["sh", "-c", "exec uvicorn services.${SERVICE}.main:create_app --factory --host 0.0.0.0 --port 8000 --proxy-headers --forwarded-allow-ips \"${TRUSTED_PROXIES}\" --no-access-log"]
