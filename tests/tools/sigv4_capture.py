#!/usr/bin/python3
"""sigv4_capture.py - a minimal in-memory S3 on loopback that checks every
request's SigV4 signature against botocore's (the oracle).

Run with Debian's /usr/bin/python3 (it has python3-botocore):

    sigv4_capture.py --creds FILE [--port-file F] [--report F] [--log F]
                     [--page-size N]

FILE holds one credential a line: "ACCESS_KEY SECRET [SESSION_TOKEN]"; it is
re-read when an unknown access key arrives, so a test may add lines. Secrets
and tokens are never written anywhere.

For each header-signed request the server rebuilds the request for botocore
from what it received: method, raw path, raw query, only the headers named in
SignedHeaders (minus X-Amz-Date, X-Amz-Content-SHA256 and X-Amz-Security-Token,
which botocore sets itself) and the body; it fixes botocore's clock to the
request's X-Amz-Date and compares botocore's Authorization with the received
one byte for byte (so the SignedHeaders lists are compared too). It also
checks: the x-amz-content-sha256 value (the body's SHA-256, or
UNSIGNED-PAYLOAD), that host and every x-amz-* header are signed, the session
token, and that the path and query are in the canonical encoding AWS expects
(every byte outside A-Za-z0-9-_.~ as %XX, upper-case hex, '/' kept in the
path) since botocore signs S3 paths and queries as given.

Presigned requests (X-Amz-Algorithm in the query) are checked against
botocore's S3SigV4QueryAuth the same way.

On a mismatch, the log gets botocore's canonical request, a model of ours
(CloudMount's signer re-encodes the wire path and query; see
src/s3/sigv4.h), whether that model reproduces the received signature, and a
diff. GET /__report answers (and writes, with --report) a JSON summary;
SIGTERM writes it too.
"""
import argparse
import base64
import datetime
import difflib
import email.utils
import hashlib
import hmac
import json
import os
import re
import signal
import sys
import threading
import time
import types
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock
from urllib.parse import quote, quote_plus, unquote, unquote_to_bytes
from xml.etree import ElementTree

import botocore.auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

UNSIGNED = 'UNSIGNED-PAYLOAD'
BOTO_ADDS = {'x-amz-date', 'x-amz-content-sha256', 'x-amz-security-token'}
AUTH_RE = re.compile(
    r'^AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, '
    r'SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$')
UNRESERVED = 'A-Za-z0-9-_.~'


class State:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()        # stats, store
        self.sign_lock = threading.Lock()   # botocore's patched clock
        self.creds = {}
        self.objects = {}                   # bucket -> key -> dict(body, etag, mtime, ctype, meta)
        self.uploads = {}                   # upload id -> dict(bucket, key, parts)
        self.checked = 0
        self.ok = 0
        self.mismatches = []
        self.problems = []
        self.ops = {}
        self.regions = {}
        self.with_token = 0
        self.unsigned_payload = 0
        self.signed_payload = 0
        self.presigned = 0
        self.unauthenticated = 0
        self.total = 0
        self.load_creds()

    def load_creds(self):
        creds = {}
        with open(self.args.creds) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 2:
                    creds[parts[0]] = (parts[1], parts[2] if len(parts) > 2 else None)
        self.creds = creds

    def lookup(self, ak):
        if ak not in self.creds:
            self.load_creds()
        return self.creds.get(ak)

    def redact(self, text):
        """Hide every secret and token we know of."""
        for ak, (secret, token) in self.creds.items():
            for s, label in ((secret, '<secret>'), (token, '<token>')):
                if s:
                    text = text.replace(s, label)
                    text = text.replace(quote(s, safe=''), label)
        return text

    def log(self, text):
        text = self.redact(text)
        if self.args.log:
            with self.lock, open(self.args.log, 'a') as f:
                f.write(text + '\n')
        else:
            sys.stderr.write(text + '\n')

    def report(self):
        with self.lock:
            stored = sorted('%s/%s' % (b, k) for b, objs in self.objects.items() for k in objs)
            rep = {
                'requests': self.total,
                'checked': self.checked,
                'ok': self.ok,
                'mismatch_count': len(self.mismatches),
                'problem_count': len(self.problems),
                'mismatches': self.mismatches,
                'problems': self.problems,
                'ops': dict(sorted(self.ops.items())),
                'regions': self.regions,
                'with_token': self.with_token,
                'signed_payload': self.signed_payload,
                'unsigned_payload': self.unsigned_payload,
                'presigned': self.presigned,
                'unauthenticated': self.unauthenticated,
                'stored_keys': stored,
            }
        return json.loads(self.redact(json.dumps(rep)))

    def write_report(self):
        rep = self.report()
        if self.args.report:
            tmp = self.args.report + '.tmp'
            with open(tmp, 'w') as f:
                json.dump(rep, f, indent=1, ensure_ascii=False)
            os.replace(tmp, self.args.report)
        return rep


# ---------------------------------------------------------------- encodings

def aws_encode(s, keep_slash):
    """AWS URI encoding of a str or bytes: everything outside unreserved as %XX."""
    if isinstance(s, str):
        s = s.encode('utf-8')
    return quote(s, safe='/-_.~' if keep_slash else '-_.~')


def lenient_unquote(s):
    """Decode %XX like our signer: a '%' without two hex digits stays literal."""
    return unquote_to_bytes(s)


def split_query(raw_query):
    pairs = []
    if raw_query:
        for p in raw_query.split('&'):
            if p == '':
                continue
            k, eq, v = p.partition('=')
            pairs.append((k, v, bool(eq)))
    return pairs


def query_dict(raw_query):
    """Decoded parameters (last one wins)."""
    return {unquote(k): unquote(v) for k, v, _ in split_query(raw_query)}


def our_canonical_query(raw_query):
    """CloudMount's canonical query as sigv4.c builds it: re-encode, sort."""
    pairs = [(aws_encode(lenient_unquote(k), False), aws_encode(lenient_unquote(v), False))
             for k, v, _ in split_query(raw_query)]
    return '&'.join('%s=%s' % kv for kv in sorted(pairs))


def fold(v):
    out = []
    for word in re.split(r'[ \t\r\n]+', v):
        if word:
            out.append(word)
    return ' '.join(out)


def our_model(method, raw_path, raw_query, hdrs, signed_names, payload, region, amz_date,
              secret):
    """A model of CloudMount's canonical request, from the wire, and its signature."""
    cr = '\n'.join([
        method,
        aws_encode(lenient_unquote(raw_path), True),
        our_canonical_query(raw_query),
        ''.join('%s:%s\n' % (n, ','.join(fold(v) for v in hdrs.get(n, [])))
                for n in signed_names),
        ';'.join(signed_names),
        payload,
    ])
    sts = '\n'.join(['AWS4-HMAC-SHA256', amz_date,
                     '%s/%s/s3/aws4_request' % (amz_date[:8], region),
                     hashlib.sha256(cr.encode('utf-8', 'surrogateescape')).hexdigest()])
    k = ('AWS4' + secret).encode()
    for m in (amz_date[:8], region, 's3', 'aws4_request'):
        k = hmac.new(k, m.encode(), hashlib.sha256).digest()
    return cr, hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()


class FixedClock(datetime.datetime):
    now_value = None

    @classmethod
    def utcnow(cls):
        return cls.now_value


def boto_sign(state, signer_factory, req, amz_date):
    """Run a botocore signer with its clock fixed at amz_date."""
    when = datetime.datetime.strptime(amz_date, '%Y%m%dT%H%M%SZ')
    with state.sign_lock:
        FixedClock.now_value = when
        fake = types.SimpleNamespace(datetime=FixedClock, timedelta=datetime.timedelta)
        with mock.patch.object(botocore.auth, 'datetime', fake):
            signer = signer_factory()
            seen = []
            real = signer.canonical_request
            signer.canonical_request = lambda r: seen.append(real(r)) or seen[-1]
            signer.add_auth(req)
    return seen[0]      # the canonical request botocore signed


# ------------------------------------------------------------------ handler

def xml_escape(s):
    return (s.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace('"', '&quot;'))


def http_date(t):
    return email.utils.formatdate(t, usegmt=True)


def iso_date(t):
    return time.strftime('%Y-%m-%dT%H:%M:%S.000Z', time.gmtime(t))


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    server_version = 'sigv4-capture'
    sys_version = ''

    def log_message(self, fmt, *args):
        pass

    # -- plumbing
    def read_body(self):
        n = int(self.headers.get('Content-Length') or 0)
        body = b''
        while len(body) < n:
            chunk = self.rfile.read(n - len(body))
            if not chunk:
                break
            body += chunk
        return body

    def answer(self, status, body=b'', headers=None, head=False):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status not in (204, 304) and 'Content-Length' not in (headers or {}):
            self.send_header('Content-Length', str(len(body)))
        self.send_header('x-amz-request-id', uuid.uuid4().hex[:16])
        self.end_headers()
        if body and not head and self.command != 'HEAD':
            self.wfile.write(body)

    def xml(self, status, text):
        self.answer(status, ('<?xml version="1.0" encoding="UTF-8"?>\n' + text).encode(),
                    {'Content-Type': 'application/xml'})

    def error(self, status, code, msg=''):
        self.xml(status, '<Error><Code>%s</Code><Message>%s</Message></Error>'
                 % (code, xml_escape(msg)))

    def do_GET(self):
        self.handle_any()

    def do_HEAD(self):
        self.handle_any()

    def do_PUT(self):
        self.handle_any()

    def do_POST(self):
        self.handle_any()

    def do_DELETE(self):
        self.handle_any()

    def handle_any(self):
        st = self.server.state
        body = self.read_body()
        raw_path, _, raw_query = self.path.partition('?')
        if raw_path == '/__report':
            rep = st.write_report()
            self.answer(200, json.dumps(rep, ensure_ascii=False).encode(),
                        {'Content-Type': 'application/json'})
            return
        with st.lock:
            st.total += 1
        op = self.classify(raw_path, raw_query)
        verdict = self.verify(st, op, raw_path, raw_query, body)
        if verdict == 'denied':
            self.error(403, 'SignatureDoesNotMatch', 'see the capture log')
            return
        try:
            self.serve(st, op, raw_path, raw_query, body)
        except Exception as e:  # keep serving; a crash here is a test bug
            st.log('# server error on %s %s: %r' % (self.command, self.path, e))
            with st.lock:
                st.problems.append({'request': '%s %s' % (self.command, self.path),
                                    'problem': 'server error %r' % (e,)})
            self.error(500, 'InternalError', repr(e))

    # -- classification
    def classify(self, raw_path, raw_query):
        q = query_dict(raw_query)
        m = self.command
        parts = raw_path.lstrip('/').split('/', 1)
        has_key = len(parts) == 2 and parts[1] != ''
        pre = 'Presigned' if 'X-Amz-Algorithm' in q else ''
        if not has_key:
            if m == 'GET' and q.get('list-type') == '2':
                return pre + 'ListObjectsV2'
            if m == 'GET' and 'uploads' in q:
                return pre + 'ListMultipartUploads'
            if m == 'GET' and 'location' in q:
                return pre + 'GetBucketLocation'
            if m == 'POST' and 'delete' in q:
                return pre + 'DeleteObjects'
            return pre + {'HEAD': 'HeadBucket', 'GET': 'ListObjectsV1',
                          'PUT': 'CreateBucket', 'DELETE': 'DeleteBucket'}.get(m, m + 'Bucket')
        if m == 'POST' and 'uploads' in q:
            return pre + 'CreateMultipartUpload'
        if m == 'POST' and 'uploadId' in q:
            return pre + 'CompleteMultipartUpload'
        if m == 'PUT' and 'partNumber' in q:
            return pre + ('UploadPartCopy' if self.headers.get('x-amz-copy-source') else 'UploadPart')
        if m == 'DELETE' and 'uploadId' in q:
            return pre + 'AbortMultipartUpload'
        if m == 'GET' and 'uploadId' in q:
            return pre + 'ListParts'
        if m == 'PUT':
            return pre + ('CopyObject' if self.headers.get('x-amz-copy-source') else 'PutObject')
        if m == 'GET':
            return pre + ('GetObjectRange' if self.headers.get('Range') else 'GetObject')
        return pre + {'HEAD': 'HeadObject', 'DELETE': 'DeleteObject'}.get(m, m + 'Object')

    # -- verification
    def problem(self, st, what, detail):
        st.log('# PROBLEM %s %s: %s' % (self.command, self.path, detail))
        with st.lock:
            st.problems.append({'request': '%s %s' % (self.command, self.path),
                                'op': what, 'problem': detail})

    def check_encoding(self, st, op, raw_path, raw_query):
        path_bytes = unquote_to_bytes(raw_path)
        if aws_encode(path_bytes, True) != raw_path:
            self.problem(st, op, 'path not in canonical AWS encoding: %r (canonical %r)'
                         % (raw_path, aws_encode(path_bytes, True)))
        for k, v, _ in split_query(raw_query):
            for part in (k, v):
                if aws_encode(unquote_to_bytes(part), False) != part:
                    self.problem(st, op, 'query component not in canonical AWS encoding: %r'
                                 % part)

    def verify(self, st, op, raw_path, raw_query, body):
        q = query_dict(raw_query)
        self.access_key = None
        if 'X-Amz-Algorithm' in q:
            return self.verify_presigned(st, op, raw_path, raw_query, q)
        auth = self.headers.get('Authorization')
        if auth is None:
            with st.lock:
                st.unauthenticated += 1
            self.problem(st, op, 'request without Authorization')
            return 'denied'
        self.check_encoding(st, op, raw_path, raw_query)
        m = AUTH_RE.match(auth)
        if not m:
            self.problem(st, op, 'unparsable Authorization header')
            return 'denied'
        ak, date, region, service, signed, sig = m.groups()
        self.access_key = ak
        cred = st.lookup(ak)
        if cred is None:
            self.problem(st, op, 'unknown access key %s' % ak)
            return 'denied'
        secret, token = cred
        signed_names = signed.split(';')
        amz_date = self.headers.get('X-Amz-Date', '')
        if not re.match(r'^\d{8}T\d{6}Z$', amz_date) or amz_date[:8] != date:
            self.problem(st, op, 'X-Amz-Date %r does not match the scope date %s'
                         % (amz_date, date))
            return 'denied'
        if service != 's3':
            self.problem(st, op, 'service %r in scope' % service)
        # every x-amz-* header and host are signed
        received = {}
        for name, value in self.headers.items():
            received.setdefault(name.lower(), []).append(value)
        unsigned_amz = sorted(n for n in received if n.startswith('x-amz-') and n not in signed_names)
        if unsigned_amz:
            self.problem(st, op, 'x-amz-* headers not signed: %s' % ','.join(unsigned_amz))
        if 'host' not in signed_names:
            self.problem(st, op, 'host not signed')
        if signed_names != sorted(set(signed_names)):
            self.problem(st, op, 'SignedHeaders not sorted/unique: %s' % signed)
        missing = [n for n in signed_names if n not in received]
        if missing:
            self.problem(st, op, 'signed headers not sent: %s' % ','.join(missing))
        # token
        got_token = self.headers.get('X-Amz-Security-Token')
        if token and got_token != token:
            self.problem(st, op, 'session token missing or different')
        if not token and got_token is not None:
            self.problem(st, op, 'session token sent for credentials without one')
        # payload hash
        content_sha = self.headers.get('x-amz-content-sha256')
        if content_sha is None:
            self.problem(st, op, 'no x-amz-content-sha256')
        elif content_sha != UNSIGNED and content_sha != hashlib.sha256(body).hexdigest():
            self.problem(st, op, 'x-amz-content-sha256 is not the SHA-256 of the %d-byte body'
                         % len(body))
        # botocore
        url = 'http://%s%s' % (self.headers.get('Host', ''), raw_path)
        if raw_query:
            url += '?' + raw_query
        req = AWSRequest(method=self.command, url=url, data=body)
        for n in signed_names:
            if n in BOTO_ADDS:
                continue
            for v in received.get(n, []):
                req.headers[n] = v      # HTTPHeaders: repeated names add values
        if content_sha == UNSIGNED:
            req.context['client_config'] = Config(s3={'payload_signing_enabled': False})
        try:
            creq = boto_sign(st, lambda: botocore.auth.S3SigV4Auth(
                Credentials(ak, secret, token), 's3', region), req, amz_date)
        except Exception as e:
            self.problem(st, op, 'botocore failed: %r' % (e,))
            return 'denied'
        want = req.headers['Authorization']
        same = want == auth
        with st.lock:
            st.checked += 1
            st.ok += same
            st.ops[op] = st.ops.get(op, 0) + 1
            st.regions[region] = st.regions.get(region, 0) + 1
            st.with_token += bool(got_token)
            if content_sha == UNSIGNED:
                st.unsigned_payload += 1
            elif body:
                st.signed_payload += 1
        if not same:
            ours, model_sig = our_model(self.command, raw_path, raw_query, received, signed_names,
                                        content_sha or '', region, amz_date, secret)
            self.record_mismatch(st, op, creq, ours, model_sig == sig,
                                 {'boto_authorization': want,
                                  'our_authorization': auth,
                                  'x_amz_date': amz_date,
                                  'boto_x_amz_content_sha256': req.headers.get('X-Amz-Content-SHA256'),
                                  'our_x_amz_content_sha256': content_sha})
            return 'denied'
        return 'ok'

    def verify_presigned(self, st, op, raw_path, raw_query, q):
        self.check_encoding(st, op, raw_path, raw_query)
        try:
            ak, date, region, service, _ = q['X-Amz-Credential'].split('/')
            self.access_key = ak
            amz_date = q['X-Amz-Date']
            expires = int(q['X-Amz-Expires'])
            signed_names = q['X-Amz-SignedHeaders'].split(';')
            sig = q['X-Amz-Signature']
        except (KeyError, ValueError) as e:
            self.problem(st, op, 'presigned URL lacks a parameter: %r' % (e,))
            return 'denied'
        cred = st.lookup(ak)
        if cred is None:
            self.problem(st, op, 'unknown access key %s' % ak)
            return 'denied'
        secret, token = cred
        if token and q.get('X-Amz-Security-Token') != token:
            self.problem(st, op, 'presigned URL: session token missing or different')
        if q.get('X-Amz-Algorithm') != 'AWS4-HMAC-SHA256':
            self.problem(st, op, 'presigned URL: algorithm %r' % q.get('X-Amz-Algorithm'))
        if 'host' not in signed_names:
            self.problem(st, op, 'presigned URL: host not signed')
        received = {}
        for name, value in self.headers.items():
            received.setdefault(name.lower(), []).append(value)
        auth_names = {'X-Amz-Algorithm', 'X-Amz-Credential', 'X-Amz-Date', 'X-Amz-Expires',
                      'X-Amz-SignedHeaders', 'X-Amz-Security-Token', 'X-Amz-Signature'}
        op_params = [(k, v, eq) for k, v, eq in split_query(raw_query) if unquote(k) not in auth_names]
        url = 'http://%s%s' % (self.headers.get('Host', ''), raw_path)
        if op_params:
            url += '?' + '&'.join(k + ('=' + v if eq else '') for k, v, eq in op_params)
        req = AWSRequest(method=self.command, url=url)
        for n in signed_names:
            for v in received.get(n, []):
                req.headers[n] = v
        try:
            creq = boto_sign(st, lambda: botocore.auth.S3SigV4QueryAuth(
                Credentials(ak, secret, token), 's3', region, expires=expires), req, amz_date)
        except Exception as e:
            self.problem(st, op, 'botocore failed: %r' % (e,))
            return 'denied'
        boto_query = req.url.split('?', 1)[1]
        boto_pairs = sorted(p for p in boto_query.split('&') if not p.startswith('X-Amz-Signature='))
        our_pairs = sorted(p for p in raw_query.split('&') if not p.startswith('X-Amz-Signature='))
        boto_sig = boto_query.rsplit('X-Amz-Signature=', 1)[1]
        same = boto_sig == sig and boto_pairs == our_pairs
        with st.lock:
            st.checked += 1
            st.ok += same
            st.presigned += 1
            st.ops[op] = st.ops.get(op, 0) + 1
            st.regions[region] = st.regions.get(region, 0) + 1
            st.with_token += 'X-Amz-Security-Token' in q
        if not same:
            stripped = '&'.join(p for p in raw_query.split('&') if not p.startswith('X-Amz-Signature='))
            ours, model_sig = our_model(self.command, raw_path, stripped, received, signed_names,
                                        UNSIGNED, region, amz_date, secret)
            self.record_mismatch(st, op, creq, ours, model_sig == sig,
                                 {'boto_signature': boto_sig, 'our_signature': sig,
                                  'boto_query': '&'.join(boto_pairs),
                                  'our_query': '&'.join(our_pairs)})
            return 'denied'
        return 'ok'

    def record_mismatch(self, st, op, creq, ours, model_reproduces, extra):
        if not model_reproduces:
            extra = dict(extra, note='our signature is not reproduced from the request as received '
                         '(nor is botocore\'s): the client signed something other than what arrived '
                         '(path or query rewritten after signing?)')
        diff = list(difflib.unified_diff(creq.split('\n'), ours.split('\n'),
                                         'botocore', 'cloudmount(model)', lineterm='', n=0))
        entry = {'request': '%s %s' % (self.command, self.path), 'op': op,
                 'access_key': self.access_key,
                 'botocore_canonical_request': creq,
                 'our_canonical_request_model': ours,
                 'model_reproduces_our_signature': model_reproduces,
                 'diff': diff}
        entry.update(extra)
        with st.lock:
            st.mismatches.append(entry)
        st.log('# MISMATCH %s %s (%s)\n## botocore canonical request:\n%s\n'
               '## ours (model; reproduces our signature: %s):\n%s\n## diff:\n%s\n## %s'
               % (self.command, self.path, op, creq, model_reproduces, ours, '\n'.join(diff),
                  json.dumps(extra, ensure_ascii=False)))

    # -- the minimal S3
    def serve(self, st, op, raw_path, raw_query, body):
        q = query_dict(raw_query)
        parts = raw_path.lstrip('/').split('/', 1)
        bucket = unquote(parts[0])
        key = unquote(parts[1]) if len(parts) == 2 else ''
        op = op.replace('Presigned', '', 1) if op.startswith('Presigned') else op
        with st.lock:
            objs = st.objects.setdefault(bucket, {})
        if op in ('HeadBucket', 'CreateBucket'):
            self.answer(200, headers={'x-amz-bucket-region': 'us-east-1'})
        elif op == 'GetBucketLocation':
            self.xml(200, '<LocationConstraint/>')
        elif op == 'ListObjectsV2':
            self.list_v2(st, bucket, objs, q)
        elif op == 'ListMultipartUploads':
            self.xml(200, '<ListMultipartUploadsResult><Bucket>%s</Bucket><IsTruncated>false'
                     '</IsTruncated></ListMultipartUploadsResult>' % xml_escape(bucket))
        elif op in ('HeadObject', 'GetObject', 'GetObjectRange'):
            with st.lock:
                o = objs.get(key)
            if o is None:
                if self.command == 'HEAD':
                    self.answer(404)
                else:
                    self.error(404, 'NoSuchKey', key)
                return
            self.get_object(o)
        elif op == 'PutObject':
            self.store(st, objs, key, body)
        elif op == 'CopyObject':
            src = unquote(self.headers['x-amz-copy-source'].lstrip('/'))
            sb, _, sk = src.partition('/')
            with st.lock:
                o = st.objects.get(sb, {}).get(sk)
            if o is None:
                self.error(404, 'NoSuchKey', src)
                return
            etag = self.store(st, objs, key, o['body'], answer=False)
            self.xml(200, '<CopyObjectResult><ETag>"%s"</ETag><LastModified>%s</LastModified>'
                     '</CopyObjectResult>' % (etag, iso_date(time.time())))
        elif op == 'DeleteObject':
            with st.lock:
                objs.pop(key, None)
            self.answer(204)
        elif op == 'DeleteObjects':
            self.delete_objects(st, objs, body)
        elif op == 'CreateMultipartUpload':
            uid = 'up+/=%s~%s' % (uuid.uuid4().hex[:8], uuid.uuid4().hex[:8])
            with st.lock:
                st.uploads[uid] = {'bucket': bucket, 'key': key, 'parts': {},
                                   'ctype': self.headers.get('Content-Type')}
            self.xml(200, '<InitiateMultipartUploadResult><Bucket>%s</Bucket><Key>%s</Key>'
                     '<UploadId>%s</UploadId></InitiateMultipartUploadResult>'
                     % (xml_escape(bucket), xml_escape(key), xml_escape(uid)))
        elif op == 'UploadPart':
            with st.lock:
                up = st.uploads.get(q.get('uploadId'))
                if up is not None:
                    etag = hashlib.md5(body).hexdigest()
                    up['parts'][int(q['partNumber'])] = (body, etag)
            if up is None:
                self.error(404, 'NoSuchUpload')
                return
            self.answer(200, headers={'ETag': '"%s"' % etag})
        elif op == 'CompleteMultipartUpload':
            with st.lock:
                up = st.uploads.pop(q.get('uploadId'), None)
            if up is None:
                self.error(404, 'NoSuchUpload')
                return
            try:
                root = ElementTree.fromstring(body)
                nums = [int(e.text) for e in root.iter() if e.tag.endswith('PartNumber')]
            except ElementTree.ParseError:
                self.error(400, 'MalformedXML')
                return
            data = b''.join(up['parts'][n][0] for n in nums)
            md5s = b''.join(bytes.fromhex(up['parts'][n][1]) for n in nums)
            etag = '%s-%d' % (hashlib.md5(md5s).hexdigest(), len(nums))
            with st.lock:
                objs[key] = {'body': data, 'etag': etag, 'mtime': time.time(),
                             'ctype': up['ctype'] or 'binary/octet-stream'}
            self.xml(200, '<CompleteMultipartUploadResult><Location>http://%s%s</Location>'
                     '<Bucket>%s</Bucket><Key>%s</Key><ETag>"%s"</ETag>'
                     '</CompleteMultipartUploadResult>'
                     % (xml_escape(self.headers.get('Host', '')), xml_escape(raw_path),
                        xml_escape(bucket), xml_escape(key), etag))
        elif op == 'AbortMultipartUpload':
            with st.lock:
                st.uploads.pop(q.get('uploadId'), None)
            self.answer(204)
        else:
            self.error(501, 'NotImplemented', op)

    def store(self, st, objs, key, body, answer=True):
        etag = hashlib.md5(body).hexdigest()
        meta = {k: v for k, v in self.headers.items() if k.lower().startswith('x-amz-meta-')}
        with st.lock:
            objs[key] = {'body': body, 'etag': etag, 'mtime': time.time(),
                         'ctype': self.headers.get('Content-Type') or 'binary/octet-stream',
                         'meta': meta}
        if answer:
            self.answer(200, headers={'ETag': '"%s"' % etag})
        return etag

    def get_object(self, o):
        data = o['body']
        hdrs = {'ETag': '"%s"' % o['etag'], 'Last-Modified': http_date(o['mtime']),
                'Content-Type': o['ctype'], 'Accept-Ranges': 'bytes'}
        for k, v in (o.get('meta') or {}).items():
            hdrs[k] = v
        rng = self.headers.get('Range')
        m = re.match(r'^bytes=(\d*)-(\d*)$', rng or '')
        if rng and m and (m.group(1) or m.group(2)):
            size = len(data)
            if m.group(1):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
            else:
                start, end = max(0, size - int(m.group(2))), size - 1
            end = min(end, size - 1)
            if start >= size or start > end:
                hdrs['Content-Range'] = 'bytes */%d' % size
                self.error(416, 'InvalidRange')
                return
            hdrs['Content-Range'] = 'bytes %d-%d/%d' % (start, end, size)
            part = data[start:end + 1]
            hdrs['Content-Length'] = str(len(part))
            self.answer(206, part, hdrs)
            return
        hdrs['Content-Length'] = str(len(data))
        self.answer(200, data, hdrs)

    def list_v2(self, st, bucket, objs, q):
        enc = q.get('encoding-type') == 'url'
        e = (lambda s: quote_plus(s, safe='/')) if enc else (lambda s: s)
        prefix = q.get('prefix', '')
        delim = q.get('delimiter', '')
        try:
            max_keys = int(q.get('max-keys', '1000'))
        except ValueError:
            self.error(400, 'InvalidArgument', 'max-keys')
            return
        page = max(0, min(max_keys, st.args.page_size))
        after, skip_prefix = q.get('start-after', ''), ''
        token = q.get('continuation-token')
        if token is not None:
            try:
                t = json.loads(base64.b64decode(token[len('tok+/='):]).decode())
                after, skip_prefix = t['after'], t['skip']
            except Exception:
                self.error(400, 'InvalidArgument', 'continuation-token')
                return
        with st.lock:
            keys = sorted((k, o['etag'], o['mtime'], len(o['body'])) for k, o in objs.items())
        contents, prefixes, truncated, last = [], [], False, None
        for k, etag, mtime, size in keys:
            if not k.startswith(prefix) or k <= after:
                continue
            if skip_prefix and k.startswith(skip_prefix):
                continue
            cp = None
            if delim:
                i = k.find(delim, len(prefix))
                if i >= 0:
                    cp = k[:i + len(delim)]
            if cp is not None and prefixes and prefixes[-1] == cp:
                continue
            if len(contents) + len(prefixes) >= page:
                truncated = True
                break
            if cp is not None:
                prefixes.append(cp)
                last = (cp, cp)
            else:
                contents.append((k, etag, mtime, size))
                last = (k, '')
        out = ['<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">',
               '<Name>%s</Name><Prefix>%s</Prefix>' % (xml_escape(bucket), xml_escape(e(prefix))),
               '<KeyCount>%d</KeyCount><MaxKeys>%d</MaxKeys>'
               % (len(contents) + len(prefixes), max_keys)]
        if delim:
            out.append('<Delimiter>%s</Delimiter>' % xml_escape(e(delim)))
        if enc:
            out.append('<EncodingType>url</EncodingType>')
        if token is not None:
            out.append('<ContinuationToken>%s</ContinuationToken>' % xml_escape(token))
        if 'start-after' in q:
            out.append('<StartAfter>%s</StartAfter>' % xml_escape(e(q['start-after'])))
        out.append('<IsTruncated>%s</IsTruncated>' % ('true' if truncated else 'false'))
        if truncated:
            tok = 'tok+/=' + base64.b64encode(json.dumps(
                {'after': last[0], 'skip': last[1]}).encode()).decode()
            out.append('<NextContinuationToken>%s</NextContinuationToken>' % xml_escape(tok))
        for k, etag, mtime, size in contents:
            out.append('<Contents><Key>%s</Key><LastModified>%s</LastModified>'
                       '<ETag>&quot;%s&quot;</ETag><Size>%d</Size>'
                       '<StorageClass>STANDARD</StorageClass></Contents>'
                       % (xml_escape(e(k)), iso_date(mtime), etag, size))
        for p in prefixes:
            out.append('<CommonPrefixes><Prefix>%s</Prefix></CommonPrefixes>' % xml_escape(e(p)))
        out.append('</ListBucketResult>')
        self.xml(200, ''.join(out))

    def delete_objects(self, st, objs, body):
        md5 = self.headers.get('Content-MD5')
        if md5 is None or base64.b64decode(md5) != hashlib.md5(body).digest():
            self.error(400, 'InvalidDigest' if md5 else 'MissingContentMD5')
            return
        try:
            root = ElementTree.fromstring(body)
        except ElementTree.ParseError:
            self.error(400, 'MalformedXML')
            return
        quiet = any(el.tag.endswith('Quiet') and (el.text or '').strip() == 'true'
                    for el in root.iter())
        keys = [el.text or '' for el in root.iter() if el.tag.endswith('}Key') or el.tag == 'Key']
        out = ['<DeleteResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">']
        with st.lock:
            for k in keys:
                objs.pop(k, None)
                if not quiet:
                    out.append('<Deleted><Key>%s</Key></Deleted>' % xml_escape(k))
        out.append('</DeleteResult>')
        self.xml(200, ''.join(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--creds', required=True)
    ap.add_argument('--port-file')
    ap.add_argument('--report')
    ap.add_argument('--log')
    ap.add_argument('--page-size', type=int, default=4,
                    help='most entries a ListObjectsV2 page holds (forces continuation tokens)')
    args = ap.parse_args()
    state = State(args)
    srv = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    srv.daemon_threads = True
    srv.state = state
    port = srv.server_address[1]

    def on_term(signum, frame):
        state.write_report()
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if args.port_file:
        tmp = args.port_file + '.tmp'
        with open(tmp, 'w') as f:
            f.write('%d\n' % port)
        os.replace(tmp, args.port_file)
    print(port, flush=True)
    srv.serve_forever()


if __name__ == '__main__':
    main()
