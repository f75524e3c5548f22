# An allocation-heavy Python script: dicts, lists, strings, tuples, big ints,
# built and dropped in waves.  Prints a digest so runs can be compared.
import hashlib, sys
scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rounds = max(1, int(40 * scale))
h = hashlib.sha256()
keep = []
for r in range(rounds):
    d = {}
    for i in range(20000):
        k = "key-%d-%d" % (r, i)
        d[k] = [i, str(i) * (i % 7), (i, r), {"v": i * r}]
    words = " ".join(d.keys()).split(" ")
    words.sort(key=lambda w: (len(w), w[::-1]))
    big = 1
    for i in range(1, 300):
        big = big * (i + r) + i
    h.update(str(len(words)).encode()); h.update(str(big % 1000003).encode())
    keep.append(words[:: 97])
    if len(keep) > 8:
        keep.pop(0)
print(h.hexdigest())
