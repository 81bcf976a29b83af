#!/usr/bin/env bash
# Install the real Fashion-MNIST (Debian package dataset-fashion-mnist) when possible.
set -u
DIR=/usr/share/datasets/fashion-mnist
if [ -f "$DIR/train-images-idx3-ubyte.gz" ]; then
    exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian package dataset-fashion-mnist ..."
    if (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1; then
        exit 0
    fi
fi
cat <<MSG
Fashion-MNIST is not installed. Either
  - as root on Debian/Ubuntu: apt-get install dataset-fashion-mnist
  - or put the four IDX files (train-images-idx3-ubyte.gz, ...) in a folder and pass --data-root FOLDER
  - or let sparsegan download them on a machine with network access (sha256-checked).
MSG
exit 0
