#!/usr/bin/env bash
# Makes assets/fonts/NotoSansCJK-subset.otf: Noto Sans CJK SC (Debian's fonts-noto-cjk, SIL Open
# Font License 1.1) cut down to the characters most names and chat lines use, so the browser
# can fetch it when needed: GB 2312 level 1 (3,755 hanzi), JIS X 0208 level 1 (2,965 kanji),
# KS X 1001 (2,350 Hangul syllables), kana, CJK punctuation, full-width forms. Needs apt and pip.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download fonts-noto-cjk >/dev/null && dpkg-deb -x fonts-noto-cjk_*.deb root)
pip install --quiet fonttools
python3 - "$work/chars.txt" <<'PY'
import sys
chars = set()
def block(encoding, lead, trail):
    for a in lead:
        for b in trail:
            try:
                chars.update(bytes([a, b]).decode(encoding))
            except UnicodeDecodeError:
                pass
block("gb2312", range(0xB0, 0xD8), range(0xA1, 0xFF))   # GB 2312 level 1
block("euc_jp", range(0xB0, 0xD0), range(0xA1, 0xFF))   # JIS X 0208 level 1
block("euc_kr", range(0xB0, 0xC9), range(0xA1, 0xFF))   # KS X 1001 Hangul
for lo, hi in [(0x3000, 0x30FF), (0x3130, 0x318F), (0xFF00, 0xFFEF)]:
    chars.update(chr(c) for c in range(lo, hi + 1))
open(sys.argv[1], "w", encoding="utf-8").write("".join(sorted(chars)))
print(f"{len(chars)} characters")
PY
font="$(find "$work/root" -name 'NotoSansCJK-Regular.ttc' | head -n1)"
# Face 0 of the collection is the Japanese one; 2 is Simplified Chinese (SC).
pyftsubset "$font" --font-number=2 --text-file="$work/chars.txt" --layout-features='*' \
    --no-hinting --desubroutinize --output-file="$here/assets/fonts/NotoSansCJK-subset.otf"
cp "$(dirname "$font")/../../../doc/fonts-noto-cjk/copyright" "$here/assets/fonts/NotoSansCJK.LICENSE" 2>/dev/null \
    || echo "Noto Sans CJK: SIL Open Font License 1.1, https://openfontlicense.org" > "$here/assets/fonts/NotoSansCJK.LICENSE"
ls -l "$here/assets/fonts/NotoSansCJK-subset.otf"
