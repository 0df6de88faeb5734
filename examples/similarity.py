"""Semantic search in a few lines: embed a query and some documents with the example's `minilm` model, then
rank the documents by cosine similarity (a dot product: the embeddings are unit vectors).

    make dev                          # in one terminal
    .venv/bin/python examples/similarity.py "how do I get my money back?"
"""

from __future__ import annotations

import argparse
import os

import httpx

DOCUMENTS = [
    "Refunds are issued to the original payment method within 5 business days.",
    "Our support team is available by chat from 9am to 5pm.",
    "You can change your password from the account settings page.",
    "Shipping is free for orders over 50 euros.",
    "To return an item, print the prepaid label and drop the parcel at any post office.",
]


def embed(client: httpx.Client, texts: list[str]) -> list[list[float]]:
    response = client.post("/v1/models/minilm/predict", json={"inputs": {"text": texts}})
    response.raise_for_status()
    embeddings: list[list[float]] = response.json()["outputs"]["embeddings"]
    return embeddings


def rank(query: str, documents: list[str], client: httpx.Client) -> list[tuple[float, str]]:
    query_vector, *document_vectors = embed(client, [query, *documents])
    scores = [sum(q * d for q, d in zip(query_vector, vector, strict=True)) for vector in document_vectors]
    return sorted(zip(scores, documents, strict=True), reverse=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("query", nargs="?", default="how do I get my money back?")
    parser.add_argument("--url", default=os.environ.get("INFERSTACK_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--api-key", default=os.environ.get("INFERSTACK_API_KEY", "local-dev-key"))
    args = parser.parse_args()
    with httpx.Client(base_url=args.url, headers={"x-api-key": args.api_key}, timeout=30) as client:
        for score, document in rank(args.query, DOCUMENTS, client):
            print(f"{score:.3f}  {document}")


if __name__ == "__main__":
    main()
