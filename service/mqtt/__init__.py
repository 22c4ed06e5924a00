"""The MQTT bridge (`auscult bridge mqtt`): sensor frames and PCM audio from a broker are scored
by the same stream pipelines as the WebSocket, and verdicts, alarms and errors go back to it."""
