# Writes an SQL script for sqlite3 on an in-memory database: inserts,
# an index, updates, joins and aggregates over random text rows.
import random, sys
scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
rows = max(200, int(150000 * scale))
rnd = random.Random(42)
out = sys.stdout
out.write("PRAGMA journal_mode=OFF;\nCREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, body TEXT);\n")
out.write("CREATE TABLE g(grp INTEGER PRIMARY KEY, label TEXT);\nBEGIN;\n")
for i in range(200):
    out.write("INSERT INTO g VALUES(%d,'group-%d');\n" % (i, i))
for i in range(rows):
    name = "".join(rnd.choice("abcdefghijklmnop") for _ in range(rnd.randint(4, 16)))
    out.write("INSERT INTO t(name,grp,body) VALUES('%s',%d,'%s');\n" % (name, rnd.randrange(200), name * rnd.randint(1, 20)))
out.write("COMMIT;\nCREATE INDEX t_name ON t(name);\n")
out.write("UPDATE t SET body = body || name WHERE grp % 7 = 3;\n")
out.write("SELECT g.label, count(*), sum(length(t.body)) FROM t JOIN g USING(grp) GROUP BY g.label ORDER BY 3 DESC LIMIT 5;\n")
out.write("SELECT count(DISTINCT name) FROM t;\n")
out.write("SELECT name, group_concat(id) FROM t GROUP BY name HAVING count(*) > 2 ORDER BY name LIMIT 3;\n")
out.write("DELETE FROM t WHERE id % 3 = 0;\nVACUUM;\nSELECT count(*) FROM t;\n")
