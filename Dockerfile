# OptLab server image, following Streamlit's deployment conventions.
# Build: docker build -t optlab .    Run: docker run -p 8501:8501 optlab
# Keep the CIFAR-10 cache and the autosaved runs across restarts with a volume:
#   docker run -p 8501:8501 -v optlab-cache:/home/optlab/.cache/optlab optlab
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# curl is only for the HEALTHCHECK below.
RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first, so code changes do not reinstall torch. The CPU wheel
# index keeps the image free of several GB of CUDA packages.
COPY requirements.txt .
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

RUN useradd --create-home --uid 1000 optlab \
    && mkdir -p /home/optlab/.cache/optlab \
    && chown -R optlab:optlab /home/optlab/.cache
COPY --chown=optlab:optlab . .
USER optlab
VOLUME /home/optlab/.cache/optlab

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD curl --fail http://localhost:8501/_stcore/health || exit 1

ENTRYPOINT ["streamlit", "run", "app.py", "--server.port=8501", "--server.address=0.0.0.0", "--server.headless=true"]
