FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY connectors ./connectors
COPY router ./router
COPY store ./store
COPY web ./web
COPY workers.py brokers.py pacing.py fetching.py delivery.py cli.py cli_startup.py ./
RUN pip install --no-cache-dir . && useradd --system --uid 10001 omnidesk
USER omnidesk
EXPOSE 8000
CMD ["omnidesk", "web", "--port", "8000"]
