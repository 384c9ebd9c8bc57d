"""DynamoDB adapters. The jobs table: `schema` (names and key shapes, also read by the CDK stack), `codec` (item <->
Job) and `store` (the JobStore). The access table: `access_schema` (also read by the stack) and `access_store` (API
keys and webhook secrets). Kept import-light: the stack imports the schemas without pulling in botocore."""
