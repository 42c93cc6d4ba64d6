#!/bin/sh
# Runs inside the debootstrapped root (chroot) before it is imported as the base image.
set -eu
# A venv over /usr/local gives `python` and `pip` on PATH as in python:3.11-slim, so a
# Dockerfile written for that image builds unchanged, and pip never touches Debian's python
# (PEP 668). Debian's python3 in bookworm is 3.11.
python3 -m venv /usr/local
/usr/local/bin/python --version
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /var/log/apt/* \
	/usr/share/doc/* /usr/share/man/* /usr/share/info/* /usr/share/locale/*
find /usr/local/lib -name __pycache__ -type d -prune -exec rm -rf {} +
