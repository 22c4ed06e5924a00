"""One router per resource; service/app.py includes them all in one place."""
