"""The smallest function to attach the layer to: returns a greeting."""

import json


def handler(event, context):
    name = (event or {}).get("name", "world") if isinstance(event, dict) else "world"
    print(json.dumps({"level": "INFO", "message": f"greeting {name}"}))
    return {"statusCode": 200, "body": f"hello, {name}"}
