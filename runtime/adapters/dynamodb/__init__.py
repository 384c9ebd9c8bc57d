"""The jobs table on DynamoDB: `schema` (names and key shapes, also read by the CDK stack), `codec` (item <-> Job)
and `store` (the JobStore). Kept import-light: the stack imports `schema` without pulling in botocore."""
