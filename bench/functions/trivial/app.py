"""Bench function: does nothing but answer (the baseline every variant is compared with)."""


def handler(event, context):
    return {"ok": True, "n": event.get("n") if isinstance(event, dict) else None}
