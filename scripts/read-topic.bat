@echo off
REM Reads a topic with Kafka's console consumer: scripts\read-topic.bat metrics
cd /d "%~dp0.."
set TOPIC=%1
if "%TOPIC%"=="" set TOPIC=metrics
docker compose exec kafka /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server localhost:9092 --topic %TOPIC% --property print.key=true
