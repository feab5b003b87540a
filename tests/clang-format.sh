#!/bin/sh
# Checks that every C file follows .clang-format (TAP: one line per file).
top=${FERRYMQ_SRCDIR:-.}
if ! command -v clang-format >/dev/null 2>&1; then
	echo "1..0 # SKIP clang-format not installed"
	exit 0
fi
files=$(cd "$top" && find src tests bench -name '*.[ch]' | sort)
n=$(echo "$files" | wc -l)
echo "1..$n"
i=0
for f in $files; do
	i=$((i + 1))
	if (cd "$top" && clang-format --dry-run --Werror "$f") >/dev/null 2>&1; then
		echo "ok $i - $f"
	else
		echo "not ok $i - $f is not clang-formatted (run: clang-format -i $f)"
	fi
done
