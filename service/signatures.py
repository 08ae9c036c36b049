"""Which model versions the service trusts: OpenSSF model signatures, checked before a version loads.

A version folder ``<name>/<version>/`` is signed as one unit (``artifact.signing``, ``model.sig``): the
signature covers exactly the folder's files, so it catches what the manifest's SHA-256 cannot, an
artifact replaced together with its manifest.

* ``trusted_key`` set (``AFRNN_TRUSTED_KEY``): **enforced**. A version is loaded only if its folder's
  signature verifies against that key. Unsigned, signed by another key, a file changed, added or
  removed after signing, or a flat-layout model (no folder to sign as a unit): the version is
  unavailable with the reason, counted in ``afrnn_model_signature_refusals_total{reason}``, and a load
  that fails this way leaves the serving version untouched (``service.registry``).
* unset: **reported**. Whether a version is signed is shown in ``/models`` and the V2 metadata; nothing
  is refused.

The check runs in the loading thread, before the artifact is read (``service.registry``).
"""

from pathlib import Path
from typing import Any

from service.metrics import ServiceMetrics


class SignatureRefusedError(RuntimeError):
    """A version refused under the trusted key; ``reason`` is the metric's label."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class SignaturePolicy:
    """Checks (``trusted_key`` given) or reports (None) the signature of each version that loads."""

    def __init__(self, trusted_key: Path | None, metrics: ServiceMetrics):
        self.trusted_key = trusted_key
        self.metrics = metrics
        self.fingerprint = None
        if trusted_key is not None:          # a key that cannot be read stops the start, not each model
            from artifact.signing import key_fingerprint

            self.fingerprint = key_fingerprint(trusted_key)

    @property
    def enforced(self) -> bool:
        return self.trusted_key is not None

    def check(self, entry: Any) -> Any:
        """The ``artifact.signing.SignatureStatus`` of ``entry``'s folder (a ``service.registry.
        ServedModel``), or ``SignatureRefusedError`` under enforcement."""
        from artifact import signing  # the verifier's imports cost only when a model loads

        if not self.enforced:
            if entry.flat:
                return signing.SignatureStatus(signed=False, verified=False, key_fingerprint=None,
                                               detail="flat layout: not signed as a unit (not enforced)")
            return signing.signature_status(entry.folder)
        try:
            return signing.verify_folder(entry.folder, self.trusted_key, flat_layout=entry.flat)
        except signing.SignatureRefused as err:
            self.metrics.signature_refusals.labels(reason=err.reason).inc()
            raise SignatureRefusedError(err.reason, str(err)) from None


def signature_policy(settings: Any, metrics: ServiceMetrics) -> SignaturePolicy:
    return SignaturePolicy(settings.trusted_key, metrics)
