# The MLflow tracking server of docker-compose.yml: the official image plus the PostgreSQL
# driver and the S3 client it needs for the backend store and proxied artifacts.
FROM ghcr.io/mlflow/mlflow:v3.17.2
RUN pip install --no-cache-dir "psycopg[binary]==3.2.12" "boto3==1.40.61"
