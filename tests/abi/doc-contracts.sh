#!/usr/bin/env bash
# doc-contracts.sh HEADER: every function of the server table in cwsgi.h states its ownership
# rule (ABI-TYPE-4): the doc comment just above each "(*name)(" member has an "Ownership:" line.
set -euo pipefail
/usr/bin/python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
body = re.search(r'struct cwsgi_server_api \{(.*?)\n\};', text, re.S).group(1)
names = re.findall(r'\(\*(\w+)\)\(', body)
missing, seen = [], 0
for m in re.finditer(r'(/\*\*(?:(?!\*/).)*\*/)\s*((?:[\w ]+\*?\s*)*\(\*(\w+)\)\()', body, re.S):
    comment, name = m.group(1), m.group(3)
    seen += 1
    if 'Ownership:' not in comment:
        missing.append(name)
# set_user_data and get_user_data share one comment; every other function has its own.
if missing or seen != len(names) - 1:
    print(f"FAIL: {seen} table functions found; without an Ownership line: {', '.join(missing)}")
    sys.exit(1)
print(f"ok: {seen} documented table functions state their ownership")
PY
