MARK = "fnlib from the customer PYTHONPATH"
