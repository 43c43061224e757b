"""Real-shaped provider payloads for the intake-source tests (field names and values as in each provider's
public webhook documentation), and each provider's signing scheme done with keys the tests make."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

# ---------------------------------------------------------------------- Mailgun


def mailgun_delivered(event_id: str) -> dict[str, Any]:
    return {
        "tags": ["my_tag_1", "my_tag_2"], "timestamp": 1521472262.908181, "storage": {
            "url": "https://se.api.mailgun.net/v3/domains/example.com/messages/message_key", "key": "message_key"},
        "envelope": {"transport": "smtp", "sender": "bob@example.com", "sending-ip": "209.61.154.250",
                     "targets": "alice@example.com"},
        "recipient-domain": "example.com", "id": event_id, "campaigns": [],
        "user-variables": {"my_var_1": "Mailgun Variable #1", "my-var-2": "awesome"},
        "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
        "log-level": "info",
        "message": {"headers": {"to": "Alice <alice@example.com>",
                                "message-id": "20130503182626.18666.16540@example.com",
                                "from": "Bob <bob@example.com>", "subject": "Test delivered webhook"},
                    "attachments": [], "size": 111},
        "recipient": "alice@example.com", "event": "delivered",
        "delivery-status": {"tls": True, "mx-host": "smtp-in.example.com", "code": 250, "description": "",
                            "session-seconds": 0.4331989288330078, "utf8": True, "attempt-no": 1, "message": "OK",
                            "certificate-verified": True},
    }


def mailgun_failed(event_id: str) -> dict[str, Any]:
    return {
        "severity": "permanent", "tags": ["my_tag_1"], "timestamp": 1521233195.375624, "id": event_id,
        "recipient-domain": "example.com", "log-level": "error", "reason": "suppress-bounce",
        "envelope": {"sender": "bob@example.com", "transport": "smtp", "targets": "alice@example.com"},
        "user-variables": {"my_var_1": "Mailgun Variable #1"}, "campaigns": [],
        "message": {"headers": {"to": "Alice <alice@example.com>",
                                "message-id": "20130503192659.13651.20287@example.com",
                                "from": "Bob <bob@example.com>", "subject": "Test permanent_fail webhook"},
                    "attachments": [], "size": 111},
        "recipient": "alice@example.com", "event": "failed",
        "delivery-status": {"attempt-no": 1, "message": "", "code": 605,
                            "description": "Not delivering to previously bounced address", "session-seconds": 0.0},
    }


def mailgun_body(signing_key: str, event_data: dict[str, Any], *, timestamp: float | None = None,
                 token: str | None = None, key: str | None = None) -> bytes:
    stamp = str(int(time.time() if timestamp is None else timestamp))
    token = token or uuid.uuid4().hex + uuid.uuid4().hex[:18]
    signature = hmac.new((key or signing_key).encode(), (stamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps({"signature": {"timestamp": stamp, "token": token, "signature": signature},
                       "event-data": event_data}).encode()


# ---------------------------------------------------------------------- SendGrid
SMTP_ID = "<14c5d75ce93.dfd.64b469@ismtpd-555>"
SG_MESSAGE_ID = "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0"


def sendgrid_batch(prefix: str) -> list[dict[str, Any]]:
    """SendGrid's sample batch, one event of each type (``prefix`` makes the ``sg_event_id`` unique)."""
    common = {"email": "example@test.com", "timestamp": 1513299569, "smtp-id": SMTP_ID, "category": "cat facts",
              "sg_message_id": SG_MESSAGE_ID}
    events: list[dict[str, Any]] = [
        {"event": "processed"},
        {"event": "deferred", "response": "400 try again later", "attempt": "5"},
        {"event": "delivered", "response": "250 OK"},
        {"event": "open", "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322)",
         "ip": "255.255.255.255"},
        {"event": "click", "useragent": "Mozilla/4.0 (compatible; MSIE 6.1; Windows XP; .NET CLR 1.1.4322)",
         "ip": "255.255.255.255", "url": "http://www.sendgrid.com/"},
        {"event": "bounce", "reason": "500 unknown recipient", "status": "5.0.0", "type": "bounce",
         "bounce_classification": "Invalid Address"},
        {"event": "dropped", "reason": "Bounced Address", "status": "5.0.0"},
        {"event": "spamreport"},
        {"event": "unsubscribe"},
        {"event": "group_unsubscribe", "useragent": "Mozilla/4.0", "ip": "255.255.255.255",
         "url": "http://www.sendgrid.com/", "asm_group_id": 10},
        {"event": "group_resubscribe", "useragent": "Mozilla/4.0", "ip": "255.255.255.255",
         "url": "http://www.sendgrid.com/", "asm_group_id": 10},
    ]
    return [{**common, **event, "sg_event_id": f"{prefix}-{i}", "customer_account": "A1"}
            for i, event in enumerate(events)]


class SendGridSigner:
    """A key pair like the one SendGrid makes for a signed Event Webhook."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: float | None = None) -> dict[str, str]:
        stamp = str(int(time.time() if timestamp is None else timestamp))
        signature = self.private.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {"Content-Type": "application/json",
                "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp}


# ---------------------------------------------------------------------- Postmark
PM_MESSAGE_ID = "883953f4-6105-42a2-a16a-77a8eac79483"
PM_AT = "2019-11-05T16:33:54.9070259Z"
_CLIENT = {"Client": {"Name": "Chrome 35.0.1916.153", "Company": "Google", "Family": "Chrome"},
           "OS": {"Name": "OS X 10.7 Lion", "Company": "Apple Computer, Inc.", "Family": "OS X 10"},
           "Platform": "WebMail",
           "UserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_7_5) AppleWebKit/537.36 (KHTML, like Gecko)",
           "Geo": {"CountryISOCode": "RS", "Country": "Serbia", "RegionISOCode": "VO",
                   "Region": "Autonomna Pokrajina Vojvodina", "City": "Novi Sad", "Zip": "21000",
                   "Coords": "45.2517,19.8369", "IP": "188.2.95.4"}}


def postmark_records(recipient: str) -> dict[str, dict[str, Any]]:
    """One record of each RecordType, as Postmark's webhook documentation shows them."""
    base = {"MessageStream": "outbound", "MessageID": PM_MESSAGE_ID, "Tag": "welcome-email",
            "Metadata": {"a_key": "a_value", "b_key": "b_value"}}
    bounce = {**base, "ServerID": 23, "Name": "Hard bounce", "From": "sender@example.com", "BouncedAt": PM_AT,
              "DumpAvailable": True, "CanActivate": True, "Subject": "Test subject", "Content": "<Full dump of bounce>",
              "Email": recipient}
    return {
        "Delivery": {**base, "RecordType": "Delivery", "ServerID": 23, "Recipient": recipient, "DeliveredAt": PM_AT,
                     "Details": "Test delivery webhook details"},
        "Bounce": {**bounce, "RecordType": "Bounce", "ID": 4323372036854775807, "Type": "HardBounce", "TypeCode": 1,
                   "Description":
                       "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
                   "Details": "Test bounce details", "Inactive": True},
        "SoftBounce": {**bounce, "RecordType": "Bounce", "ID": 4323372036854775808, "Type": "SoftBounce",
                       "TypeCode": 4096, "Description": "The server could not temporarily deliver your message.",
                       "Details": "mailbox full", "Inactive": False},
        "SpamComplaint": {**bounce, "RecordType": "SpamComplaint", "ID": 42, "Type": "SpamComplaint",
                          "TypeCode": 512, "Name": "Spam complaint", "Inactive": True},
        "Open": {**base, **_CLIENT, "RecordType": "Open", "FirstOpen": True, "ReadSeconds": 5, "ReceivedAt": PM_AT,
                 "Recipient": recipient},
        "Click": {**base, **_CLIENT, "RecordType": "Click", "ClickLocation": "HTML",
                  "OriginalLink": "https://example.com", "ReceivedAt": PM_AT, "Recipient": recipient},
        "SubscriptionChange": {**base, "RecordType": "SubscriptionChange", "ServerID": 23,
                               "ChangedAt": "2020-02-01T10:53:34.416071Z", "Recipient": recipient,
                               "Origin": "Recipient", "SuppressSending": True,
                               "SuppressionReason": "ManualSuppression"},
    }


# ---------------------------------------------------------------------- KumoMTA
def kumo_record(kind: str, recipient: str, **extra: Any) -> dict[str, Any]:
    """A log record of ``kind`` shaped like KumoMTA's log record reference."""
    record: dict[str, Any] = {
        "type": kind, "id": "1d98076abbbc11ed940250ebf67f93bd", "sender": "user@sender.example.com",
        "recipient": recipient, "queue": "campaign:tenant@domain",
        "site": "source2->(alt1|alt2|alt3|alt4)?.gmail-smtp-in.l.google.com.", "size": 1047,
        "response": {"code": 250, "enhanced_code": {"class": 2, "subject": 0, "detail": 0},
                     "content": "OK ids=8a5475ccbbc611eda12250ebf67f93bd", "command": "."},
        "peer_address": {"name": "gmail-smtp-in.l.google.com.", "addr": "142.251.2.27"},
        "timestamp": 1678069691, "created": 1678069691, "num_attempts": 0,
        "bounce_classification": "Uncategorized", "egress_pool": "pool0", "egress_source": "source2",
        "feedback_report": None, "meta": {"campaign_id": "spring-sale"},
        "headers": {"Message-ID": "<8a5475cc.bbc6@sender.example.com>"},
        "delivery_protocol": "ESMTP", "reception_protocol": "ESMTP", "nodeid": "557f3ad4-2c8c-11ee-976e-782d7e12e173",
    }
    record.update(extra)
    return record


def kumo_batch(recipient: str) -> list[dict[str, Any]]:
    return [
        kumo_record("Reception", recipient, site="", response={"code": 250, "enhanced_code": None,
                                                               "content": "", "command": None}),
        kumo_record("TransientFailure", recipient, num_attempts=1, response={
            "code": 421, "enhanced_code": {"class": 4, "subject": 7, "detail": 0},
            "content": "Try again later", "command": "."}),
        kumo_record("Delivery", recipient, num_attempts=2),
        kumo_record("Bounce", recipient, bounce_classification="InvalidRecipient", response={
            "code": 550, "enhanced_code": {"class": 5, "subject": 1, "detail": 1},
            "content": "The email account that you tried to reach does not exist.", "command": "."}),
        kumo_record("Feedback", recipient, feedback_report={"feedback_type": "abuse"}),
        kumo_record("Rejection", recipient),
    ]


# ---------------------------------------------------------------------- Postal
class PostalSigner:
    """An RSA key like a Postal server's signing key; ``public_key`` as its DKIM-style ``p=`` value."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public_key = base64.b64encode(der).decode()

    def sign(self, body: bytes, algorithm: hashes.HashAlgorithm) -> str:
        from cryptography.hazmat.primitives.asymmetric import padding

        return base64.b64encode(self.private.sign(body, padding.PKCS1v15(), algorithm)).decode()

    def headers(self, body: bytes, sha256: bool = True) -> dict[str, str]:
        out = {"Content-Type": "application/json", "X-Postal-Signature": self.sign(body, hashes.SHA1())}
        if sha256:
            out["X-Postal-Signature-256"] = self.sign(body, hashes.SHA256())
        return out


def postal_bodies(recipient: str) -> dict[str, bytes]:
    """One webhook body of each Postal message event, shaped like Postal's webhook documentation."""
    message = {"id": 12345, "token": "abcdef123", "direction": "outgoing",
               "message_id": "5817a64332f44_4ec93ff59e79d154565eb@app34.mail", "to": recipient,
               "from": "sales@awesomeapp.com", "subject": "Welcome to AwesomeApp", "timestamp": 1477945177.12994,
               "spam_status": "NotSpam", "tag": "welcome"}
    status = {"details": "Message sent by SMTP to aspmx.l.google.com (2a00:1450:400c:c0b::1b) (from 2a03:2800:0:1::2)",
              "sent_with_ssl": True, "timestamp": 1477945177.12994, "time": 0.22, "message": message}
    agent = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_12_0) AppleWebKit/537.36 (KHTML, like Gecko)"
    payloads = {
        "MessageSent": {**status, "status": "Sent", "output": "250 2.0.0 OK 1477944899 ly4si31532330wjb.4 - gsmtp"},
        "MessageDelayed": {**status, "status": "SoftFail", "output": "421 4.7.0 Try again later"},
        "MessageDeliveryFailed": {**status, "status": "HardFail", "output": "550 5.1.1 No such user"},
        "MessageBounced": {"original_message": message, "bounce": {**message, "id": 12347, "direction": "incoming",
                                                                   "to": "abcde@psrp.postal.yourdomain.com",
                                                                   "from": "postmaster@someserver.com"}},
        "MessageLinkClicked": {"url": "https://atech.media", "token": "VJzsFA0S", "ip_address": "185.22.208.2",
                               "user_agent": agent, "message": message},
        "MessageLoaded": {"ip_address": "185.22.208.2", "user_agent": agent, "message": message},
        "MessageHeld": {**status, "status": "Held", "output": ""},
    }
    return {name: json.dumps({"event": name, "timestamp": 1477945177.12994, "uuid": str(uuid.uuid4()),
                              "payload": payload}).encode() for name, payload in payloads.items()}
