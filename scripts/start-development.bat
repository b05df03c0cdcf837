@echo off
REM Starts the system for data collection: output\sockshop_metrics.csv; models and scaler off.
cd /d "%~dp0.."
if not exist output mkdir output
set MODE=development
set COMPOSE_PROFILES=
docker compose up -d --build %*
