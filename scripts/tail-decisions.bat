@echo off
REM Follows the scaler's decision log.
cd /d "%~dp0.."
docker compose logs -f --tail=100 authoritative-scaler
