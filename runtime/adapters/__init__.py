"""AWS adapters of the domain ports; each takes an injected boto3 client."""
