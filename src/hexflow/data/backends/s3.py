"""An S3-compatible bucket (boto3) as a storage backend.

Small files are one ``PutObject`` (atomic); larger ones a multipart upload, invisible until
``CompleteMultipartUpload``. Every request body carries its MD5 (``Content-MD5``, which S3
checks) and the returned ETag is compared with it too, so a byte flipped on the way is
caught even by servers that do not check. Objects hexflow writes carry their digest in the
``hexflow-hash`` metadata; reads check the MD5 ETag of single-part objects and the length.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from hexflow.data.backends.base import TEMP_MARK, ObjectInfo
from hexflow.data.errors import BackendError, IntegrityError

HASH_META = "hexflow-hash"
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_TRANSIENT_CODES = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "RequestTimeTooSkewed",
    "BadDigest",
    "InvalidDigest",
    "NoSuchUpload",
    "500",
    "502",
    "503",
    "504",
}
MIN_PART = 5 << 20


def make_client(endpoint_url: str | None, region: str | None) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            max_pool_connections=32,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def s3_error(exc: Exception, what: str) -> BackendError:
    """botocore's exceptions → ``BackendError`` with ``transient`` set."""
    from botocore.exceptions import ClientError

    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        hint = None
        if code in ("NoSuchBucket",):
            hint = "create the bucket, or set create_bucket: true on the tier"
        elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            hint = "check the S3 credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
        return BackendError(
            f"{what}: {code or status} {err.get('Message', '')}".rstrip(),
            hint=hint,
            transient=code in _TRANSIENT_CODES or status >= 500,
            code=code,
            missing=code in ("NoSuchKey", "404"),
        )
    # Connection refused or reset, timeouts, a response cut short: the network or the
    # server; trying again may help.
    return BackendError(
        f"{what}: {type(exc).__name__}: {exc}",
        hint="is the S3 endpoint up and reachable?",
        transient=True,
    )


def _md5(data: bytes | bytearray | memoryview) -> tuple[str, str]:
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return digest.hex(), base64.b64encode(digest).decode()


class S3Backend:
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        label: str | None = None,
        create_bucket: bool = False,
        part_size: int = 8 << 20,
        client: Any = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.label = label or f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.create_bucket = create_bucket
        self.part_size = max(part_size, MIN_PART)
        self.client = client or make_client(endpoint_url, region)
        self._bucket_checked = False
        self._lock = threading.Lock()

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}".strip("/") if self.prefix else key.strip("/")

    def _rel(self, object_key: str) -> str:
        return object_key[len(self.prefix) + 1 :] if self.prefix else object_key

    def _call(self, what: str, fn: Any, **kw: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kw)
        except Exception as exc:
            raise s3_error(exc, what) from None

    def stat(self, key: str) -> ObjectInfo | None:
        from botocore.exceptions import ClientError

        okey = self.object_key(key)
        if not okey:
            return None
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=okey)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("404", "NoSuchKey", "NotFound"):
                return None
            raise s3_error(exc, f"cannot stat s3://{self.bucket}/{okey}") from None
        except Exception as exc:
            raise s3_error(exc, f"cannot stat s3://{self.bucket}/{okey}") from None
        return ObjectInfo(
            key=key,
            size=int(head["ContentLength"]),
            mtime=head["LastModified"].timestamp(),
            etag=str(head.get("ETag", "")).strip('"') or None,
            stored_hash=(head.get("Metadata") or {}).get(HASH_META),
        )

    def is_dir(self, key: str) -> bool:
        prefix = self.object_key(key)
        prefix = f"{prefix}/" if prefix else ""
        try:
            out = self._call(
                f"cannot list s3://{self.bucket}/{prefix}",
                self.client.list_objects_v2,
                Prefix=prefix,
                MaxKeys=1,
            )
        except BackendError as exc:
            if exc.fields.get("code") == "NoSuchBucket":
                return False  # nothing there yet (a writer creates it if the tier says so)
            raise
        return int(out.get("KeyCount", 0)) > 0

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        base = self.object_key(prefix)
        base = f"{base}/" if base else ""
        token: str | None = None
        while True:
            kw: dict[str, Any] = {"Prefix": base}
            if token:
                kw["ContinuationToken"] = token
            try:
                page = self._call(
                    f"cannot list s3://{self.bucket}/{base}", self.client.list_objects_v2, **kw
                )
            except BackendError as exc:
                if exc.fields.get("code") == "NoSuchBucket" and self.create_bucket:
                    return  # not created yet: empty
                raise
            for obj in page.get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                if name.startswith(TEMP_MARK) or obj["Key"].endswith("/"):
                    continue
                yield ObjectInfo(
                    key=self._rel(obj["Key"]),
                    size=int(obj["Size"]),
                    mtime=obj["LastModified"].timestamp(),
                    etag=str(obj.get("ETag", "")).strip('"') or None,
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")

    def read(self, key: str, offset: int = 0, chunk: int = 4 << 20) -> Iterator[bytes]:
        okey = self.object_key(key)
        what = f"cannot read s3://{self.bucket}/{okey}"
        kw: dict[str, Any] = {"Key": okey}
        if offset:
            kw["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(Bucket=self.bucket, **kw)
        except Exception as exc:
            err = s3_error(exc, what)
            if err.fields.get("missing"):
                raise BackendError(
                    f"s3://{self.bucket}/{okey}: the source object disappeared",
                    transient=False,
                    missing=True,
                ) from None
            raise err from None
        length = int(response["ContentLength"])
        etag = str(response.get("ETag", "")).strip('"')
        md5 = hashlib.md5(usedforsecurity=False) if not offset and _MD5_RE.match(etag) else None
        body = response["Body"]
        got = 0
        try:
            while True:
                try:
                    data = body.read(chunk)
                except Exception as exc:
                    raise s3_error(exc, what) from None
                if not data:
                    break
                got += len(data)
                if md5 is not None:
                    md5.update(data)
                yield data
        finally:
            body.close()
        if got != length:
            raise IntegrityError(f"{what}: got {got} bytes of {length} (cut short)")
        if md5 is not None and md5.hexdigest() != etag:
            raise IntegrityError(
                f"s3://{self.bucket}/{okey}: the bytes read do not match the object's MD5 "
                "ETag (corrupted in transit)"
            )

    def ensure_bucket(self) -> None:
        with self._lock:
            if self._bucket_checked:
                return
            from botocore.exceptions import ClientError

            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if code in ("404", "NoSuchBucket", "NotFound") and self.create_bucket:
                    self._call(f"cannot create bucket {self.bucket}", self.client.create_bucket)
                elif code in ("404", "NoSuchBucket", "NotFound"):
                    raise BackendError(
                        f"bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}",
                        hint="create it, or set create_bucket: true on the tier",
                        transient=False,
                    ) from None
                else:
                    raise s3_error(exc, f"cannot reach bucket {self.bucket}") from None
            except Exception as exc:
                raise s3_error(exc, f"cannot reach bucket {self.bucket}") from None
            self._bucket_checked = True

    def writer(
        self,
        key: str,
        *,
        size: int,
        token: str,
        state: dict[str, Any],
        offset: int,
        digest_hint: str | None = None,
    ) -> S3Writer:
        self.ensure_bucket()
        return S3Writer(self, key, size=size, state=state, offset=offset, digest_hint=digest_hint)

    def sync(self) -> None:
        """Nothing to do: an object is durable once its upload call returned."""

    def delete(self, key: str) -> None:
        okey = self.object_key(key)
        self._call(f"cannot delete s3://{self.bucket}/{okey}", self.client.delete_object, Key=okey)

    def usage(self, prefix: str) -> tuple[int, int]:
        total = files = 0
        for info in self.list(prefix):
            total += info.size
            files += 1
        return total, files


class S3Writer:
    def __init__(
        self,
        backend: S3Backend,
        key: str,
        *,
        size: int,
        state: dict[str, Any],
        offset: int,
        digest_hint: str | None,
    ) -> None:
        self._b = backend
        self.key = backend.object_key(key)
        self.size = size
        self.digest_hint = digest_hint
        self.multipart = size > backend.part_size
        self._buffer = bytearray()
        self.parts: list[dict[str, Any]] = []
        self.upload_id: str | None = None
        self.offset = 0
        self._where = f"s3://{backend.bucket}/{self.key}"
        if self.multipart and offset and state.get("upload_id"):
            self._resume(state)

    def _resume(self, state: dict[str, Any]) -> None:
        try:
            listed = self._b.client.list_parts(
                Bucket=self._b.bucket, Key=self.key, UploadId=state["upload_id"]
            )
        except Exception as exc:
            err = s3_error(exc, f"cannot resume the upload of {self._where}")
            if err.fields.get("code") in ("NoSuchUpload", "NoSuchBucket", "404"):
                return  # the server forgot it: start again from the beginning
            raise err from None
        server = {int(p["PartNumber"]): p for p in listed.get("Parts", [])}
        parts = []
        for part in state.get("parts", []):
            seen = server.get(int(part["n"]))
            if seen is None or str(seen["ETag"]).strip('"') != part["etag"]:
                break
            if int(seen["Size"]) != int(part["size"]):
                break
            parts.append(part)
        self.upload_id = state["upload_id"]
        self.parts = parts
        self.offset = sum(int(p["size"]) for p in parts)

    def _metadata(self) -> dict[str, str]:
        return {HASH_META: self.digest_hint} if self.digest_hint else {}

    def write(self, data: bytes) -> None:
        self._buffer += data
        self.offset += len(data)
        if self.multipart:
            while len(self._buffer) >= self._b.part_size:
                body = bytes(self._buffer[: self._b.part_size])
                del self._buffer[: self._b.part_size]
                self._upload_part(body)

    def _upload_part(self, body: bytes) -> None:
        client = self._b.client
        if self.upload_id is None:
            created = self._b._call(
                f"cannot start the upload of {self._where}",
                client.create_multipart_upload,
                Key=self.key,
                Metadata=self._metadata(),
            )
            self.upload_id = created["UploadId"]
        number = len(self.parts) + 1
        hexmd5, b64md5 = _md5(body)
        out = self._b._call(
            f"cannot upload part {number} of {self._where}",
            client.upload_part,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=body,
            ContentMD5=b64md5,
        )
        etag = str(out.get("ETag", "")).strip('"')
        if _MD5_RE.match(etag) and etag != hexmd5:
            raise IntegrityError(
                f"{self._where}: part {number} arrived corrupted (server MD5 {etag}, sent {hexmd5})"
            )
        self.parts.append({"n": number, "etag": etag, "size": len(body)})

    def checkpoint(self) -> dict[str, Any]:
        if not self.multipart or self.upload_id is None:
            return {"offset": 0}
        return {
            "offset": sum(int(p["size"]) for p in self.parts),
            "upload_id": self.upload_id,
            "parts": list(self.parts),
        }

    def commit(self, digest: str) -> None:
        client = self._b.client
        if self.offset != self.size:
            self.abort()
            raise IntegrityError(f"{self._where}: wrote {self.offset} bytes, expected {self.size}")
        if not self.multipart:
            body = bytes(self._buffer)
            hexmd5, b64md5 = _md5(body)
            out = self._b._call(
                f"cannot write {self._where}",
                client.put_object,
                Key=self.key,
                Body=body,
                ContentMD5=b64md5,
                Metadata={HASH_META: digest},
            )
            etag = str(out.get("ETag", "")).strip('"')
            if _MD5_RE.match(etag) and etag != hexmd5:
                self._b.delete(self._rel_key())
                raise IntegrityError(f"{self._where}: arrived corrupted (server MD5 {etag})")
            return
        if self._buffer or not self.parts:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()
        self._b._call(
            f"cannot complete the upload of {self._where}",
            client.complete_multipart_upload,
            Key=self.key,
            UploadId=self.upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["n"], "ETag": f'"{p["etag"]}"'} for p in self.parts]
            },
        )
        info = self._b.stat(self._rel_key())
        if info is None or info.size != self.size:
            got = "nothing" if info is None else f"{info.size} bytes"
            raise IntegrityError(f"{self._where}: completed upload holds {got}, not {self.size}")
        # A multipart ETag is md5(the parts' MD5s) + "-N": the server assembled our parts.
        joined = b"".join(bytes.fromhex(p["etag"]) for p in self.parts if _MD5_RE.match(p["etag"]))
        expected = f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(self.parts)}"
        comparable = bool(info.etag) and "-" in str(info.etag)
        if comparable and len(joined) == 16 * len(self.parts) and info.etag != expected:
            self._b.delete(self._rel_key())
            raise IntegrityError(
                f"{self._where}: the completed object is not the parts sent "
                f"(ETag {info.etag}, expected {expected})"
            )

    def _rel_key(self) -> str:
        return self._b._rel(self.key)

    def suspend(self) -> None:
        """Uploaded parts stay on the server; a retry lists them and goes on."""

    def abort(self) -> None:
        if self.upload_id is None:
            return
        try:
            self._b.client.abort_multipart_upload(
                Bucket=self._b.bucket, Key=self.key, UploadId=self.upload_id
            )
        except Exception:  # best effort: the server may be the thing that failed
            pass
        self.upload_id = None
        self.parts = []
