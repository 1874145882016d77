"""Put the artifact store on S3, or on any S3-compatible server (MinIO, Ceph, moto...).

Needs the ``s3`` extra (``pip install 'necrocode-artifact-store[s3]'``).
Credentials are found the way boto3 always finds them (``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY``, ``~/.aws/credentials``, an instance role); this
script never handles them. It checks that the bucket works end to end (upload,
search, verified download, delete of its own test artifacts) and prints the
configuration file that makes every tool use it.

    # AWS S3
    python examples/s3_backend_setup.py --bucket my-team-artifacts --region eu-west-1
    # a local MinIO, creating the bucket first
    python examples/s3_backend_setup.py --bucket artifacts \\
        --endpoint-url http://127.0.0.1:9000 --create-bucket

Every option defaults to its ``NECROCODE_ARTIFACT_STORE_BACKEND__*`` environment variable.
"""

from __future__ import annotations

import argparse
import os
import uuid
from typing import Any

import yaml

from necrocode.artifact_store import ArtifactStore, ArtifactStoreConfig, ArtifactType

ENV = "NECROCODE_ARTIFACT_STORE_"


def parse_args() -> argparse.Namespace:
    """Options, with defaults from the environment."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bucket", default=os.environ.get(f"{ENV}BACKEND__BUCKET"))
    parser.add_argument("--prefix", default=os.environ.get(f"{ENV}BACKEND__PREFIX", "necrocode"))
    parser.add_argument("--region", default=os.environ.get(f"{ENV}BACKEND__REGION"))
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(f"{ENV}BACKEND__ENDPOINT_URL"),
        help="for S3-compatible servers, e.g. http://127.0.0.1:9000",
    )
    parser.add_argument(
        "--create-bucket", action="store_true", help="create the bucket if it does not exist"
    )
    args = parser.parse_args()
    if not args.bucket:
        parser.error(f"give --bucket or set {ENV}S3_BUCKET")
    return args


def create_bucket(bucket: str, region: str | None, endpoint_url: str | None) -> None:
    """Create ``bucket`` unless it exists (needs s3:CreateBucket)."""
    import boto3  # noqa: PLC0415 - only this optional step talks to S3 directly

    client = boto3.client("s3", region_name=region, endpoint_url=endpoint_url)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    if bucket in existing:
        return
    options: dict[str, Any] = {"Bucket": bucket}
    if region and region != "us-east-1":
        options["CreateBucketConfiguration"] = {"LocationConstraint": region}
    client.create_bucket(**options)
    print(f"created bucket {bucket}")


def main() -> None:
    """Check the bucket with a real round trip, then print the configuration to keep."""
    args = parse_args()
    if args.create_bucket:
        create_bucket(args.bucket, args.region, args.endpoint_url)
    config = ArtifactStoreConfig(
        backend_type="s3",
        backend={
            "bucket": args.bucket,
            "prefix": args.prefix,
            "region": args.region,
            "endpoint_url": args.endpoint_url,
        },
    )
    # A spec name of its own, so the check never touches real artifacts.
    spec = f"setup-check-{uuid.uuid4().hex[:8]}"
    content = b"--- a/README\n+++ b/README\n@@ -1 +1 @@\n-hello\n+hello, S3\n"
    with ArtifactStore(config) as store:
        print(f"store root: {store.root_uri}")
        uri = store.upload("1.1", spec, ArtifactType.DIFF, content, tags=["setup-check"])
        print(f"uploaded {uri}")
        found = store.search(spec_name=spec)
        assert [m.uri for m in found] == [uri], found
        assert store.download(uri) == content  # verified against its SHA-256
        assert store.verify_checksum(uri)
        meta = store.get_metadata(uri)
        print(f"downloaded and verified {meta.size} bytes ({meta.checksum[:19]}...)")
        print(f"removed {store.delete_by_spec_name(spec)} test artifact")

    written = config.to_dict()
    backend = {key: value for key, value in written["backend"].items() if value}
    settings = {"backend_type": written["backend_type"], "backend": backend}
    print("\nSave this as ~/.necrocode/config/artifact-store.yaml to use the bucket:\n")
    print(yaml.safe_dump({"artifact_store": settings}, sort_keys=False), end="")
    print("\nok")


if __name__ == "__main__":
    main()
