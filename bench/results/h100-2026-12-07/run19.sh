#!/usr/bin/env bash
# Call 19 (the day's seventh session, on call 18's machine while still warm): P (main at cae47e8,
# carry/bd29.tar.xz) at prefill chunks of 1,024 (the default), 2,048 and 4,096 tokens, two
# alternating rounds, TTFT at 8K and 32K and the peak device memory of each. Run as one line
# through the device tool; the 4,096 runs' files did not come back (the tool's file count), their
# figures are in README.md from the call's output.
c=carry/bd29; [[ -d $c/P ]] || tar -xJf carry/bd29.tar.xz -C carry; source scripts/gpu_env.sh $c/P /tmp/resd30; for r in 1 2; do for ch in 1024 2048 4096; do echo "== round $r chunk $ch"; timeout 40 $c/P/bin/kvlab-bench --shape llama-3.1-8b --contexts 8192,32768 --decode-tokens 4 --warmup-tokens 1 --chunk $ch --json $OUT/P_c${ch}_$r.json > $OUT/P_c${ch}_$r.log 2>&1 || echo "exit $?"; grep -E '^\| llama' $OUT/P_c${ch}_$r.log | cut -c1-100; grep -o '"peak[^,]*' $OUT/P_c${ch}_$r.json | head -2; done; done
