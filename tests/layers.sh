#!/bin/sh
# The layering rule of docs/ARCHITECTURE.md, read from #include lines: a
# file may include its own folder and folders of a lower rank only.
#   core 0 <- http 1, engine 1 <- journal 2 <- net 3 <- svc 4 <- api 5 <- main.c
# http and engine share a rank, so neither may include the other.
# awaitload (tools/awaitload) may use core and http only. Every quoted
# include names its folder ("core/buf.h"), so the rule is visible in each
# file. Exits 1 naming each include that breaks the rule.
top=${AWAITD_SRCDIR:-$(dirname "$0")/..}
cd "$top" || exit 1
rank() {
    case $1 in
    core) echo 0 ;; http | engine) echo 1 ;; journal) echo 2 ;; net) echo 3 ;;
    svc) echo 4 ;; api) echo 5 ;; main) echo 6 ;; *) echo -1 ;;
    esac
}
out=$(
    for f in src/*/*.[ch] src/*.c tools/awaitload/*.[ch]; do
        [ -f "$f" ] || continue
        case $f in
        src/*/*) from=$(echo "$f" | cut -d/ -f2) ;;
        tools/awaitload/*) from=awaitload ;;
        *) from=main ;;
        esac
        rf=$(rank "$from")
        if [ "$from" != awaitload ] && [ "$rf" -lt 0 ]; then
            echo "$f: folder '$from' has no rank (add it here and to docs/ARCHITECTURE.md)"
            continue
        fi
        grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
            sed 's/^\([0-9]*\):.*"\(.*\)".*/\1 \2/' | while read -r n inc; do
            case $inc in
            ac_config.h) continue ;;
            */*) to=${inc%%/*} ;;
            *)
                [ "$from" = awaitload ] && [ -f "tools/awaitload/$inc" ] && continue
                echo "$f:$n: \"$inc\" names no folder"
                continue
                ;;
            esac
            [ "$to" = "$from" ] && continue
            if [ "$from" = awaitload ]; then
                case $to in core | http) ;; *) echo "$f:$n: awaitload may use core and http only: \"$inc\"" ;; esac
                continue
            fi
            rt=$(rank "$to")
            if [ "$rt" -lt 0 ] || [ "$rt" -ge "$rf" ]; then
                echo "$f:$n: $from (rank $rf) may not include $to (rank $rt): \"$inc\""
            fi
        done
    done
)
nfiles=$(ls src/*/*.[ch] src/*.c tools/awaitload/*.[ch] | wc -l)
if [ -n "$out" ]; then
    echo "$out" | sed 's/^/layers: /'
    echo "layers: $(echo "$out" | wc -l) include(s) break the rule in $nfiles files"
    exit 1
fi
echo "layers: $nfiles files, every include follows core <- http, engine <- journal <- net <- svc <- api <- main"
