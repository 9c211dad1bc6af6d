"""An order-lookup function with the behaviours an operator wants to see in telemetry.

The demo (`lambda-sandbox demo`) drives it with payloads such as {"order": "A-1"}; special payloads:
  {"fail": true}       a handled error: the handler raises, the runtime reports it (errorType ValueError)
  {"sleep_s": 5}       a slow call that runs into the function timeout
  {"throttled": true}  a downstream service throttles us: the SDK error is logged, a fallback is returned
Deploy it as is: handler `app.handler`, any Python runtime, no dependencies.
"""

import json
import logging
import os
import time

logger = logging.getLogger()
logger.setLevel(logging.INFO)

# Init work happens once per execution environment: this is what a cold start pays for.
_STARTED = time.time()
CATALOG = {f"A-{n}": {"order": f"A-{n}", "items": n % 5 + 1, "total": round(9.5 * (n % 7 + 1), 2)}
           for n in range(1, 2001)}
time.sleep(float(os.environ.get("ORDERS_INIT_DELAY_S", "0.15")))   # stands for loading config, clients, models
INIT_MS = round((time.time() - _STARTED) * 1000, 1)


class DownstreamThrottled(Exception):
    """What an AWS SDK raises when the downstream service rejects the call (e.g. DynamoDB, SQS)."""


def _lookup(order_id, throttled):
    if throttled:
        raise DownstreamThrottled("An error occurred (ThrottlingException) when calling the GetItem operation: "
                                  "Rate exceeded")
    time.sleep(0.02)                      # the downstream round trip
    return CATALOG.get(order_id)


def handler(event, context):
    event = event if isinstance(event, dict) else {}
    if event.get("fail"):
        raise ValueError(f"order {event.get('order')!r} is not a valid order id")
    if event.get("sleep_s"):
        time.sleep(float(event["sleep_s"]))   # longer than the function timeout: Lambda stops it
    order_id = event.get("order", "A-1")
    try:
        found = _lookup(order_id, bool(event.get("throttled")))
    except DownstreamThrottled as exc:
        # The SDK's own log line is what the sidecar counts as a downstream throttle.
        logger.warning("ThrottlingException: Rate exceeded (%s); serving a cached answer", exc)
        return {"statusCode": 200, "body": json.dumps({"order": order_id, "cached": True})}
    print(json.dumps({"level": "INFO", "message": "order looked up", "order": order_id, "found": found is not None}))
    if found is None:
        return {"statusCode": 404, "body": json.dumps({"error": f"no order {order_id}"})}
    return {"statusCode": 200, "body": json.dumps(found), "initMs": INIT_MS}
