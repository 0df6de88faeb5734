"""Bulk scoring: a whole file in S3 scored chunk by chunk by a Step Functions Distributed Map.

`service` answers the API (`POST /v1/batches`, `GET`, `DELETE`); `plan` splits the input into line-aligned
chunks; `scorer` is the batch function (plan, score a chunk, finish); `store` keeps the batch records.
"""
