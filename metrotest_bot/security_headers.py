"""Browser-side defences on every response (OWASP ASVS 14.4).

The panel has no inline script, style or event handler (all in static/), so
the Content-Security-Policy allows only the site's own files: an injected
<script> does not run. No page may be framed, so «Очистить журнал» cannot be
clickjacked from another page, even one of the same site. Pages of the admin
blueprint hold call data and are never cached (admin/__init__.py).
"""
from flask import Flask

def content_security_policy(media_src: str) -> str:
    """`media_src`: where call recordings may play from (CSP_MEDIA_SRC; the telephony's storage)."""
    return "; ".join([
        "default-src 'self'",
        f"media-src {media_src}",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ])


HEADERS = {
    "X-Frame-Options": "DENY",  # for browsers that predate frame-ancestors
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def init_app(app: Flask) -> None:
    headers = {"Content-Security-Policy": content_security_policy(app.config["CSP_MEDIA_SRC"]),
               **HEADERS}

    def add_security_headers(response):
        for name, value in headers.items():
            response.headers.setdefault(name, value)
        return response

    app.after_request(add_security_headers)
