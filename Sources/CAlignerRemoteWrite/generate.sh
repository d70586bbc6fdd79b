#!/usr/bin/env bash
# Regenerates the committed protoc-c output from proto/*.proto.
# Needs Debian's protobuf-c-compiler (protoc-c). Run from anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/proto"
protoc-c --c_out="$here" remote_write_v1.proto remote_write_v2.proto
cd "$here"
mv -f remote_write_v1.pb-c.h remote_write_v2.pb-c.h include/
cat > include/CAlignerRemoteWrite.h <<'H'
#include "remote_write_v1.pb-c.h"
#include "remote_write_v2.pb-c.h"
H
echo "generated with $(protoc-c --version | head -1)"
