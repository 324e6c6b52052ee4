"""Writes the .eml corpus beside this file: ``python tests/corpus/email/make_corpus.py``.

The messages are written out byte for byte (several charsets, CRLF and LF line ends) so the big and
the broken ones (a 1 MB header, 200 nested multiparts, a never-closed boundary) can be rebuilt.
Expected outcomes live in ``tests/unit/test_email_parse.py``.
"""

from __future__ import annotations

import base64
import random
import struct
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def png(width: int = 2, height: int = 2) -> bytes:
    """A tiny valid PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", "\r\n")


def write(name: str, content: str | bytes, *, charset: str = "utf-8", line_end: str = "\r\n") -> None:
    if isinstance(content, str):
        text = content.replace("\r\n", "\n").replace("{SP}", " ")  # {SP}: a significant trailing space
        if line_end == "\r\n":
            text = text.replace("\n", "\r\n")
        content = text.encode(charset)
    (HERE / name).write_bytes(content)


HEAD = """Return-Path: <{sender}>
Delivered-To: support+9f2c1e7a@support.example.com
Message-ID: <{mid}>
Date: Fri, 05 May 2023 17:44:33 +0200
From: {from_}
To: Support <support@example.com>
Subject: {subject}
MIME-Version: 1.0
"""


def head(subject: str, mid: str, from_: str = "Mette Hansen <mette@kunde.dk>", sender: str = "mette@kunde.dk") -> str:
    return HEAD.format(subject=subject, mid=mid, from_=from_, sender=sender)


def main() -> None:
    write(
        "plain_da_utf8.eml",
        head(
            "Fejl i =?utf-8?b?b3JkcmViZWtyw6ZmdGVsc2Ug4oCTIGJsw6Viw6ZyZ3LDuGQg?=\n =?utf-8?b?w6bDuMOlIMOGw5jDhQ==?=",
            "CAEPk3R+plain-da@mail.example.dk",
            from_="=?utf-8?b?U8O4cmVuIMOGcsO4?= <Soren@Example.DK>",
            sender="soren@example.dk",
        )
        + """Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: 8bit
Content-Language: da

Hej

Når jeg åbner ordrebekræftelsen, står der "Fejl 500" i stedet for beløbet.
Det sker for alle ordrer siden i går.

Med venlig hilsen
Søren Ærø
""",
    )

    write(
        "subject_iso8859_q.eml",
        head("=?iso-8859-1?q?bl=E5b=E6r?= i kurven forsvinder", "20230505.1@kunde.dk", "Bo Jensen <bo@kunde.dk>")
        + """Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

N=E5r jeg l=E6gger bl=E5b=E6r i kurven, forsvinder de igen efter et par sekun=
der. Det g=F8r det sv=E6rt at handle.
""",
    )

    write(
        "body_windows1252.eml",
        head("Prisen vises forkert", "20230505.2@kunde.dk")
        + """Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: 8bit

Prisen står som 1.299 € \u2013 men den burde være 999 €.
Kunden siger \u201cdet er forkert\u201d, og vi\u2019re enige.
""",
        charset="cp1252",
    )

    write(
        "body_latin1_label_cp1252_bytes.eml",
        head("Pris i euro", "20230505.3@kunde.dk")
        + """Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

Rabatten på 50 € bliver ikke trukket fra \u2013 kunden får \u201cfejl\u201d.
""",
        charset="cp1252",
    )

    write(
        "body_utf8_label_latin1.eml",
        head("Bekræftelsen mangler", "20230505.4@kunde.dk")
        + """Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: 8bit

Kunden får ingen ordrebekræftelse på e-mail, når betalingen er gennemført.
""",
        charset="utf-8",
    )

    write(
        "mixed_encoded_words.eml",
        """Message-ID: <mixed-words@kunde.dk>
From: =?windows-1252?q?Mette_S=F8rensen?= <Mette.Sorensen@Kunde.DK>
To: =?utf-8?q?Kundeservice_=C3=86=C3=98?= <support@example.com>, "Anden" <anden@example.com>
Cc: =?iso-8859-1?b?T2xlIEr4cmdlbnNlbg==?= <ole@kunde.dk>
Subject: Re: =?iso-8859-1?q?bl=E5b=E6r?= =?utf-8?b?Z3LDuGQ=?= er
 =?windows-1252?q?=93kold=94?=
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Grøden er kold, når den bliver leveret.
""",
    )

    write(
        "html_only_outlook.eml",
        head("Ordren kan ikke gemmes", "html-only-outlook@kunde.dk")
        + """Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<html xmlns:o=3D"urn:schemas-microsoft-com:office:office"><head>
<meta http-equiv=3D"Content-Type" content=3D"text/html; charset=3Dutf-8">
<title>Sagen</title>
<style><!--
p.MsoNormal, li.MsoNormal {margin:0cm; font-size:11.0pt; mso-fareast-language:EN-US;}
div.WordSection1 {page:WordSection1;}
--></style><!--[if gte mso 9]><xml><o:shapedefaults v:ext=3D"edit" spidmax=3D"1026" /></xml><![endif]-->
<script>document.write('tracking-pixel');</script>
</head><body lang=3DDA><div class=3DWordSection1>
<p class=3DMsoNormal>Hej support,<o:p></o:p></p>
<p class=3DMsoNormal><o:p>&nbsp;</o:p></p>
<p class=3DMsoNormal>Ordren kan ikke gemmes, n&aring;r jeg trykker &quot;Gem&quot;.<o:p></o:p></p>
<p class=3DMsoNormal>Se sk&aelig;rmbilledet p&aring; <a href=3D"https://portal.example.com/sag/17">vo=
res portal</a>.<o:p></o:p></p>
<ul><li class=3DMsoNormal>Browser: Edge</li><li class=3DMsoNormal>Version: 112</li></ul>
<p class=3DMsoNormal>Med venlig hilsen<br>Mette</p>
</div></body></html>
""",
    )

    write(
        "alternative_plain_html.eml",
        head("Eksport mangler kolonne", "alternative@kunde.dk")
        + """Content-Type: multipart/alternative; boundary="alt-1"

--alt-1
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Eksporten til CSV mangler kolonnen "Beløb".
--alt-1
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>HTML-udgave: Eksporten til CSV mangler kolonnen <b>Beløb</b>.</p>
--alt-1--
""",
    )

    write(
        "reply_da_den_skrev.eml",
        """Return-Path: <soren@kunde.dk>
Message-ID: <reply-da@mail.kunde.dk>
In-Reply-To: <reply-9f2c1e7a@support.example.com>
References: <CAEPk3Rxx@mail.kunde.dk>,
 <reply-9f2c1e7a@support.example.com>
From: =?utf-8?q?S=C3=B8ren_=C3=86r=C3=B8?= <soren@kunde.dk>
To: support+9f2c1e7a@support.example.com
Subject: Sv: [SUP-17] Kan ikke logge ind
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Det virker stadig ikke efter opdateringen. Jeg får samme fejl.

Den fre. 5. maj 2023 kl. 17.44 skrev Support <support@example.com>:
> Hej Søren
>
> Prøv venligst at logge ind igen.
>
> Venlig hilsen
> Support
""",
    )

    write(
        "reply_outlook_oprindelig.eml",
        """Message-ID: <AM0PR01MB1234.eurprd01.prod.outlook.com>
In-Reply-To: <reply-5b1d@support.example.com>
References: <first@support.example.com>,<second@support.example.com>,
\t<reply-5b1d@support.example.com>
Thread-Topic: [SUP-18] Blank rapport
Thread-Index: AdmAbCdEfGhIjKlMnOpQrStUvWxYz==
X-MS-Has-Attach:
X-Auto-Response-Suppress: All
From: Mette Hansen <mette@kunde.dk>
To: Support <support@example.com>
Subject: SV: [SUP-18] Blank rapport
Content-Language: da-DK
MIME-Version: 1.0
Content-Type: text/plain; charset="iso-8859-1"
Content-Transfer-Encoding: quoted-printable

Hej

Sk=E6rmen er stadig blank, n=E5r vi =E5bner rapporten.

Med venlig hilsen
Mette Hansen

-----Oprindelig meddelelse-----
Fra: Support <support@example.com>=20
Sendt: 5. maj 2023 17:44
Til: Mette Hansen <mette@kunde.dk>
Emne: [SUP-18] Blank rapport

Hej Mette, kan du sende et sk=E6rmbillede?
""",
    )

    write(
        "reply_outlook_from_sent.eml",
        """Message-ID: <DB9PR02MB5678@DB9PR02MB5678.eurprd02.prod.outlook.com>
In-Reply-To: <reply-77aa@support.example.com>
From: John Smith <John.Smith@Customer.Example>
To: Support <support@example.com>
Subject: RE: [SUP-19] Export times out
Content-Language: en-US
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/html; charset="us-ascii"

<html><head><style type="text/css">P {margin:0}</style></head><body dir="ltr">
<div style="font-family:Calibri,Arial">The report export still times out after 30 seconds.</div>
<div id="Signature"><p>Best regards<br>John</p></div>
<div id="appendonsend"></div>
<hr style="display:inline-block;width:98%" tabindex="-1">
<div id="divRplyFwdMsg" dir="ltr"><font face="Calibri, sans-serif" style="font-size:11pt" color="#000000">
<b>From:</b> Support &lt;support@example.com&gt;<br>
<b>Sent:</b> Friday, May 5, 2023 5:44 PM<br>
<b>To:</b> John Smith &lt;john.smith@customer.example&gt;<br>
<b>Subject:</b> [SUP-19] Export times out</font><div>&nbsp;</div></div>
<div>Hi John, could you try the export again?</div>
</body></html>
""",
    )

    write(
        "reply_gmail_en.eml",
        """Message-ID: <CAJx9Lq=gmail-reply@mail.gmail.com>
In-Reply-To: <reply-3c3c@support.example.com>
References: <reply-3c3c@support.example.com>
From: Anna Berg <anna.berg@gmail.com>
To: support+3c3c@support.example.com
Subject: Re: [SUP-20] Export fails
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="000000000000a1b2c3"

--000000000000a1b2c3
Content-Type: text/plain; charset="UTF-8"

The export still fails with error 500 when I pick "All customers".

On Fri, 5 May 2023 at 17:44, Bridge Support Team <
support@example.com> wrote:

> Hi Anna,
>
> Could you try the export again?
>

--000000000000a1b2c3
Content-Type: text/html; charset="UTF-8"

<div dir="ltr">The export still fails with error 500 when I pick &quot;All customers&quot;.</div><br>\
<div class="gmail_quote"><div dir="ltr" class="gmail_attr">On Fri, 5 May 2023 at 17:44, Bridge Support Team &lt;\
<a href="mailto:support@example.com">support@example.com</a>&gt; wrote:<br></div>\
<blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex">Hi Anna,<br><br>Could you try the export again?\
</blockquote></div>

--000000000000a1b2c3--
""",
    )

    write(
        "signature_iphone_da.eml",
        head("Login-siden hænger", "iphone-sig@kunde.dk").replace(
            "Subject: Login-siden hænger", "Subject: =?utf-8?q?Login-siden_h=C3=A6nger?="
        )
        + """Content-Type: text/plain; charset=utf-8; format=flowed
Content-Transfer-Encoding: 8bit

Login-siden hænger efter opdateringen.

Mvh Mette
--{SP}
Mette Hansen
Kunde A/S · +45 12 34 56 78

Sendt fra min iPhone
""",
    )

    image = png()
    jpeg = b64(b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9")
    write(
        "attachment_png.eml",
        head("Knappen er grå", "attachment-png@kunde.dk").replace(
            "Subject: Knappen er grå", "Subject: =?utf-8?q?Knappen_er_gr=C3=A5?="
        )
        + f"""Content-Type: multipart/mixed; boundary="mixed-b"

This is a multi-part message in MIME format.

--mixed-b
Content-Type: multipart/related; boundary="related-b"

--related-b
Content-Type: multipart/alternative; boundary="alt-b"

--alt-b
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Knappen er grå og kan ikke klikkes. Se billedet.
--alt-b
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: 8bit

<p>Knappen er grå og kan ikke klikkes. Se billedet.</p><img src="cid:image001.png@01D97F3A">
--alt-b--

--related-b
Content-Type: image/png; name="image001.png"
Content-Disposition: inline
Content-ID: <image001.png@01D97F3A>
Content-Transfer-Encoding: base64

{b64(image)}
--related-b
Content-Type: image/jpeg
Content-ID: <nameless@01D97F3A>
Content-Transfer-Encoding: base64

{jpeg}
--related-b--

--mixed-b
Content-Type: image/png
Content-Disposition: attachment; filename*=utf-8''sk%C3%A6rmbillede.png
Content-Transfer-Encoding: base64

{b64(image)}
--mixed-b--
""",
    )

    rng = random.Random(7)
    write(
        "oversized_attachment.eml",
        head("Logfil vedhæftet", "oversized@kunde.dk").replace(
            "Subject: Logfil vedhæftet", "Subject: =?utf-8?q?Logfil_vedh=C3=A6ftet?="
        )
        + f"""Content-Type: multipart/mixed; boundary="b-over"

--b-over
Content-Type: text/plain; charset=utf-8

Her er logfilen fra serveren.
--b-over
Content-Type: application/zip; name="logfil.zip"
Content-Disposition: attachment; filename="logfil.zip"
Content-Transfer-Encoding: base64

{b64(rng.randbytes(4096))}
--b-over
Content-Type: text/plain; charset=utf-8; name="note.txt"
Content-Disposition: attachment; filename="note.txt"

Kun en lille note.
--b-over--
""",
    )

    write(
        "autosvar_ooo_da.eml",
        """Return-Path: <mette@kunde.dk>
Message-ID: <autosvar-1@kunde.dk>
From: Mette Hansen <mette@kunde.dk>
To: support+9f2c1e7a@support.example.com
Subject: Autosvar: [SUP-17] Kan ikke logge ind
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Jeg er på ferie til og med 14. maj og læser ikke mail.
Ved akutte sager kontakt venligst kontoret på 12 34 56 78.
""",
    )

    write(
        "dsn_bounce.eml",
        """Return-Path: <>
Message-ID: <20230505174500.ABC12@mx.kunde.dk>
From: Mail Delivery System <MAILER-DAEMON@mx.kunde.dk>
To: support@example.com
Subject: Undelivered Mail Returned to Sender
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="dsn-boundary"

This is a MIME-encapsulated message.

--dsn-boundary
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.kunde.dk.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<mette@kunde.dk>: host mail.kunde.dk said: 550 5.1.1 User unknown

--dsn-boundary
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.kunde.dk
Arrival-Date: Fri,  5 May 2023 17:44:59 +0200 (CEST)

Final-Recipient: rfc822; mette@kunde.dk
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 User unknown

--dsn-boundary
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Support <support@example.com>
To: mette@kunde.dk
Subject: [SUP-17] Vi har modtaget din henvendelse
Message-ID: <reply-9f2c1e7a@support.example.com>

--dsn-boundary--
""",
    )

    write(
        "list_mail.eml",
        """Return-Path: <bounces+123@shop.example>
Message-ID: <nyhed-2023-05@shop.example>
From: Nyhedsbrev <nyhed@shop.example>
To: support@example.com
Subject: Ugens tilbud
List-Id: Nyheder <nyheder.shop.example>
List-Unsubscribe: <mailto:unsubscribe@shop.example>, <https://shop.example/afmeld>
Precedence: list
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Se ugens tilbud på shop.example.
""",
        line_end="\n",
    )

    write(
        "truncated_mime.eml",
        head("Log fra i morges", "truncated@kunde.dk")
        + """Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Vedhæftet log fra i morges.
--never-closed
Content-Type: text/plain; name="server.log"
Content-Disposition: attachment; filename="server.log"
Content-Transfer-Encoding: base64

MjAyMy0wNS0wNSAwODowMDowMSBFUlJPUiBkYXRhYmFzZSB0aW1lb3V0CjIwMjMtMDUtMDUgMDg6
MDA6MDIgRVJST1IgZGF0YWJhc2UgdGlt""",
    )

    write(
        "bogus_charset.eml",
        head("Tilbuddet vises ikke", "bogus-charset@kunde.dk")
        + """Content-Type: text/plain; charset=x-unknown-123
Content-Transfer-Encoding: 8bit

Kunden kan ikke se blåbær-tilbuddet på forsiden.
""",
    )

    depth = 200
    nested = "".join(f'Content-Type: multipart/mixed; boundary="n{i}"\n\n--n{i}\n' for i in range(depth))
    nested += "Content-Type: text/plain\n\ndyb tekst\n" + "".join(f"--n{i}--\n" for i in reversed(range(depth)))
    write(
        "nested_200.eml",
        head("Dybt indlejret", "nested-200@kunde.dk")
        + f"""Content-Type: multipart/mixed; boundary="top"

--top
Content-Type: text/plain; charset=utf-8

Se den vedhæftede struktur.
--top
{nested}--top--
""",
    )

    words = " ".join(f"ord{i}" for i in range(130_000))
    lines, current = [], "Stor overskrift"
    for word in words.split(" "):
        if len(current) + len(word) + 1 > 76:
            lines.append(current)
            current = word
        else:
            current += " " + word
    lines.append(current)
    big_subject = "\n ".join(lines)
    write(
        "huge_header.eml",
        f"""Message-ID: <huge-header@kunde.dk>
From: Mette Hansen <mette@kunde.dk>
To: support@example.com
Subject: {big_subject}
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Kort tekst.
""",
    )

    write(
        "empty_body.eml",
        """Message-ID: <empty@kunde.dk>
From: Mette Hansen <mette@kunde.dk>
To: support@example.com
Subject: Tom besked
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

""",
    )

    write(
        "subject_urgent_en.eml",
        head("[URGENT] Checkout is down for all customers", "urgent@customer.example", "Ann Lee <ann@customer.example>")
        + """Content-Type: text/plain; charset=utf-8

Hello, the checkout page does not load for any of our customers since this morning.
Please help us as soon as possible.
""",
    )

    write(
        "subject_kritisk_da.eml",
        head("KRITISK: Betaling fejler", "kritisk@kunde.dk")
        + """Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hej, ingen af vores kunder kan betale i webshoppen. Vi mister ordrer hver time.
""",
    )

    write(
        "forward_as_attachment.eml",
        head("Fwd: Fejlmeddelelse fra systemet", "forward@kunde.dk")
        + """Content-Type: multipart/mixed; boundary="fwd"

--fwd
Content-Type: text/plain; charset=utf-8

Se den videresendte mail nedenfor.
--fwd
Content-Type: message/rfc822

From: System <system@kunde.dk>
To: mette@kunde.dk
Subject: Fejl i nattens job
Message-ID: <inner@kunde.dk>
Content-Type: text/plain; charset=utf-8

Jobbet stoppede kl. 03.12.
--fwd--
""",
    )

    write(
        "outlook_da_text_en_label.eml",
        """Message-ID: <AM9PR07MB1111@AM9PR07MB1111.eurprd07.prod.outlook.com>
From: Lars Holm <lars@kunde.dk>
To: support@example.com
Subject: Fakturaer mangler
Content-Language: en-US
X-Auto-Response-Suppress: All
X-MS-TNEF-Correlator:
MIME-Version: 1.0
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

"""
        + b64(
            "Hej\r\n\r\nVi kan ikke se vores fakturaer i portalen siden i går. Kan I hjælpe?\r\n\r\n"
            "Med venlig hilsen\r\nLars\r\n".encode()
        )
        + "\n",
    )

    write(
        "flowed_thunderbird.eml",
        head("Datoer mangler i Excel", "flowed@kunde.dk")
        + """Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Når jeg eksporterer rapporten, bliver kolonnen med{SP}
datoer tom i Excel. Det sker kun for måneder med 31{SP}
dage.
""",
        line_end="\n",
    )


if __name__ == "__main__":
    main()
