@echo off
REM Starts the whole system with the models and the scaler active (production mode).
cd /d "%~dp0.."
if not exist output mkdir output
set MODE=production
set COMPOSE_PROFILES=production
docker compose up -d --build %*
echo Sock Shop http://localhost  Prometheus http://localhost:9090  Grafana http://localhost:3000
echo decisions: scripts\tail-decisions.bat    topics: scripts\read-topic.bat metrics
