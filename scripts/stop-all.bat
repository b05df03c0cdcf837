@echo off
REM Stops and removes every container of the system, the scaler's extra replicas included.
cd /d "%~dp0.."
set COMPOSE_PROFILES=production,demo,tools,consumers
docker compose down --remove-orphans %*
