# requests.sh - sourced by the llm-run tests: gen_requests SEED N prints N
# request lines of every kind llm-run handles (simple and OpenAI forms,
# sampling, stops, logprobs, input_ids, n = 2, bad lines) and, last, a blank
# line and a duplicate id.
#
# The same SEED gives the same lines: $RANDOM is only read in this shell,
# never inside $(...), because bash 5 reseeds $RANDOM in every subshell.
# Every valid request fits the smallest KV pool the tests use (26 blocks of
# 4 tokens: 160 KiB of the llama2-f32 fixture), so a pool can change how
# requests are batched and preempted but never which ones are answered:
# prompts are at most 10 words (at most 71 tokens), single choices take at
# most 32 tokens, n = 2 at most 9 each.
gen_requests() { # SEED N
    local words=(the quick brown fox jumps over a lazy dog while seven small birds sing loudly at dawn)
    local i w nw p mt
    RANDOM=$1
    for ((i = 1; i <= $2; i++)); do
        p=""
        nw=$((1 + RANDOM % 10))
        for ((w = 0; w < nw; w++)); do p="$p ${words[RANDOM % ${#words[@]}]}"; done
        mt=$((1 + RANDOM % 32))
        case $((i % 9)) in
        0) echo "{\"id\": $i, \"prompt\": \"$p\", \"max_tokens\": $((1 + mt / 4)), \"n\": 2, \"temperature\": 0.9, \"seed\": $i}" ;;
        1) echo "{\"custom_id\": \"c$i\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": {\"prompt\": \"$p\", \"max_tokens\": $mt, \"logprobs\": 2, \"temperature\": 0.7}}" ;;
        2) echo "{\"id\": \"s$i\", \"prompt\": \"$p\", \"max_tokens\": $mt, \"stop\": [\"e\", \"th\"], \"top_k\": 20, \"temperature\": 1.0}" ;;
        3) echo "{\"prompt\": \"$p\", \"max_tokens\": $mt, \"repetition_penalty\": 1.3, \"logprobs\": true}" ;;
        4) echo "{\"id\": $i, \"input_ids\": [1, $((3 + RANDOM % 500)), $((3 + RANDOM % 500))], \"max_tokens\": $mt, \"min_tokens\": 2, \"top_p\": 0.8, \"temperature\": 1.2}" ;;
        5) echo "{\"id\": $i, \"prompt\": \"$p\", \"max_tokens\": 0}" ;;
        6) echo "{\"id\": $i, \"prompt\": \"$p\" " ;;
        *) echo "{\"id\": $i, \"prompt\": \"$p\", \"max_tokens\": $mt}" ;;
        esac
    done
    echo ""
    echo "{\"id\": 3, \"prompt\": \"duplicate\"}"
}
