"""The reports' stylesheet: inline in a report file, served by the API for its pages
(whose CSP forbids inline styles)."""

REPORT_CSS = """
body { font-family: system-ui, sans-serif; color: #111; background: #fff; margin: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; }
h2 { font-size: 17px; border-bottom: 1px solid #ccc; padding-bottom: 3px; margin-top: 28px; }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: left; vertical-align: top; }
thead th { background: #f1f3f6; }
table.fields th { background: #f7f7f7; width: 120px; }
code { font-size: 12px; word-break: break-all; }
.verdict { font-size: 20px; font-weight: bold; padding: 8px 12px; display: inline-block; }
.verdict.passed { background: #e3f4e6; color: #1a7f37; border: 2px solid #1a7f37; }
.verdict.failed { background: #fbe5e5; color: #c62828; border: 2px solid #c62828; }
.ok { color: #1a7f37; } .bad { color: #c62828; font-weight: bold; }
.waived { color: #8a5a00; font-weight: bold; }
.plots { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
svg.plot { background: #fff; border: 1px solid #e2e2e2; }
.gallery { display: flex; flex-wrap: wrap; gap: 12px; }
figure.failure { margin: 0; width: 250px; font-size: 12px; }
figure.failure ul { margin: 4px 0; padding-left: 16px; }
.legend { font-size: 12px; color: #444; }
.signatures td { height: 42px; min-width: 220px; }
@media print { main { max-width: none; } section { break-inside: avoid; } }
"""
