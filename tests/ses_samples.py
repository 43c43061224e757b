"""Amazon SES through SNS for the intake tests: a loopback stand-in for Amazon SNS (serves the signing
certificate, records subscription confirmations), SNS's signing scheme with a key the tests make, and
SES messages shaped like the SES documentation's samples."""

from __future__ import annotations

import base64
import datetime
import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.faults.loopback import ServerThread

TOPIC = "arn:aws:sns:us-east-1:123456789012:ses-events"
CERT_PATH = "/SimpleNotificationService-7506a1e35b36ef5a444dd1a8e7cc3ed8.pem"
SIGNED = {"Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
          "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn",
                                       "Type")}


def _certificate(key: rsa.RSAPrivateKey) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class SnsStandIn(ServerThread):
    """Serves the certificate at ``CERT_PATH``; records every other GET (subscription confirmations)."""

    def __init__(self) -> None:
        super().__init__(name="sns-stand-in")
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.certificate = _certificate(self.key)
        self.gets: list[str] = []
        self.certificate_gets = 0
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return f"http://{self.host}{path}"

    async def _open(self) -> Callable[[], Awaitable[None]]:
        from aiohttp import web

        async def handle(request: web.Request) -> web.Response:
            if request.path == CERT_PATH:
                with self._lock:
                    self.certificate_gets += 1
                return web.Response(body=self.certificate, content_type="application/x-pem-file")
            if request.path == "/missing.pem":
                return web.Response(status=404)
            with self._lock:
                self.gets.append(request.path_qs)
            return web.Response(text="<ConfirmSubscriptionResponse/>", content_type="text/xml")

        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        return runner.cleanup

    def sign(self, envelope: dict[str, Any], key: rsa.RSAPrivateKey | None = None) -> bytes:
        """``envelope`` signed as SNS signs (its SignatureVersion), with the stand-in's certificate URL."""
        envelope = {"SignatureVersion": "1", "SigningCertURL": self.url(CERT_PATH), **envelope}
        canonical = "".join(f"{k}\n{envelope[k]}\n" for k in SIGNED[envelope["Type"]] if k in envelope).encode()
        algorithm = hashes.SHA1() if envelope["SignatureVersion"] == "1" else hashes.SHA256()
        signature = (key or self.key).sign(canonical, padding.PKCS1v15(), algorithm)
        envelope["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(envelope).encode()

    def notification(self, message: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"Type": "Notification", "MessageId": str(uuid.uuid4()), "TopicArn": TOPIC,
                "Message": json.dumps(message), "Timestamp": "2016-01-27T14:59:38.238Z",
                "UnsubscribeURL": self.url("/?Action=Unsubscribe"), **extra}

    def confirmation(self, token: str) -> dict[str, Any]:
        return {"Type": "SubscriptionConfirmation", "MessageId": str(uuid.uuid4()), "Token": token,
                "TopicArn": TOPIC, "Timestamp": "2016-01-27T14:59:38.238Z",
                "Message": f"You have chosen to subscribe to the topic {TOPIC}.\nTo confirm the subscription, "
                           "visit the SubscribeURL included in this message.",
                "SubscribeURL": self.url(f"/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}")}


def ses_mail(recipients: list[str]) -> dict[str, Any]:
    return {"timestamp": "2016-01-27T14:59:38.237Z", "source": "john@example.com",
            "sourceArn": "arn:aws:ses:us-east-1:888888888888:identity/example.com", "sourceIp": "127.0.3.0",
            "sendingAccountId": "123456789012", "callerIdentity": "IAM_user_or_role_name",
            "messageId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa0680-000000", "destination": recipients,
            "headersTruncated": False,
            "tags": {"ses:configuration-set": ["ConfigSet"], "ses:source-ip": ["192.0.2.0"], "campaign": ["spring"]},
            "commonHeaders": {"from": ["John Doe <john@example.com>"], "date": "Wed, 27 Jan 2016 14:05:45 +0000",
                              "to": recipients, "messageId": "custom-message-ID", "subject": "Hello"}}


def ses_messages(jane: str, richard: str) -> dict[str, dict[str, Any]]:
    """One SES message of each kind: identity notifications (``notificationType``) and event publishing
    (``eventType``)."""
    agent = "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8 (KHTML, like Gecko)"
    return {
        "Bounce": {"notificationType": "Bounce", "mail": ses_mail([jane, richard]), "bounce": {
            "bounceType": "Permanent", "bounceSubType": "General", "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "00000138111222aa-33322211-cccc-cccc-cccc-ddddaaaa068a-000000",
            "remoteMtaIp": "127.0.2.0", "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
            "bouncedRecipients": [
                {"emailAddress": jane, "action": "failed", "status": "5.1.1",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"},
                {"emailAddress": richard, "action": "failed", "status": "5.1.1",
                 "diagnosticCode": "smtp; 550 5.1.1 user unknown"}]}},
        "Complaint": {"notificationType": "Complaint", "mail": ses_mail([richard]), "complaint": {
            "userAgent": "AnyCompany Feedback Loop (V0.01)", "complainedRecipients": [{"emailAddress": richard}],
            "complaintFeedbackType": "abuse", "arrivalDate": "2016-01-27T14:59:38.237Z",
            "timestamp": "2016-01-27T14:59:38.237Z",
            "feedbackId": "000001378603177f-18c07c78-fa81-4a58-9dd1-fedc3cb8f49a-000000"}},
        "Delivery": {"eventType": "Delivery", "mail": ses_mail([jane]), "delivery": {
            "timestamp": "2016-10-19T23:21:04.133Z", "processingTimeMillis": 11893, "recipients": [jane],
            "smtpResponse": "250 2.6.0 Message received", "reportingMTA": "mta.example.com"}},
        "Open": {"eventType": "Open", "mail": ses_mail([jane]), "open": {
            "ipAddress": "192.0.2.1", "timestamp": "2017-08-09T22:00:19.652Z", "userAgent": agent}},
        "Click": {"eventType": "Click", "mail": ses_mail([jane]), "click": {
            "ipAddress": "192.0.2.1", "link": "http://docs.aws.amazon.com/ses/latest/DeveloperGuide/send-email-smtp.html",
            "linkTags": {"samplekey0": ["samplevalue0"]}, "timestamp": "2017-08-09T23:51:25.570Z", "userAgent": agent}},
    }
