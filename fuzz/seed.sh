#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Seed corpora for the fuzz targets from the lab recordings in fixtures/:
#   corpus/reader:   each fixture cut after 16 KiB and 48 KiB (header, metadata and the
#                    first chunks: small inputs fuzz faster), one whole small file and
#                    the format-spec golden file of version 1.1 (a columnar chunk);
#   corpus/analyzer: the decompressed body of the first chunks of each fixture (raw
#                    records as the BPF programs emit them), behind one control byte.
# Needs python3 and zstd. Run from fuzz/.
set -eu
cd "$(dirname "$0")"
mkdir -p corpus/reader corpus/analyzer
for f in ../fixtures/*/*.smctrace; do
  n=$(basename "$(dirname "$f")")-$(basename "$f" .smctrace)
  head -c 16384 "$f" > "corpus/reader/$n-16k"
  head -c 49152 "$f" > "corpus/reader/$n-48k"
done
cp ../fixtures/fallback/a-client.smctrace corpus/reader/fallback-a-whole
cp ../format-spec/tests/data/golden-v1.1.smctrace corpus/reader/golden-v1.1
python3 - "$@" <<'PY'
import glob, os, struct, subprocess
for f in sorted(glob.glob('../fixtures/*/*.smctrace')):
    d = open(f, 'rb').read()
    name = os.path.basename(os.path.dirname(f)) + '-' + os.path.basename(f)[:-9]
    off = struct.unpack_from('<I', d, 12)[0]
    for i in range(3):
        if d[off:off + 4] != b'SCHK':
            break
        comp = struct.unpack_from('<I', d, off + 40)[0]
        body = d[off + 56: off + 56 + comp]
        raw = subprocess.run(['zstd', '-dc'], input=body, capture_output=True, check=True).stdout
        for ctl in (0, 7):
            open(f'corpus/analyzer/{name}-chunk{i}-{ctl}', 'wb').write(bytes([ctl]) + raw[:24576])
        off += 56 + comp
        off = (off + 7) & ~7
PY
echo "corpus/reader: $(ls corpus/reader | wc -l) files, corpus/analyzer: $(ls corpus/analyzer | wc -l) files"
