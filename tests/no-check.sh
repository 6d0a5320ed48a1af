#!/bin/sh
# Stands in for the unit tests when configure did not find Check.
echo "unit tests skipped: configure did not find Check >= 0.15 (Debian package 'check');"
echo "install it (scripts/setup does) and run ./configure again"
exit 77
