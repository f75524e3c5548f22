# Writes a large C translation unit (many functions with loops, switches
# and structs) for a gcc -O2 compile benchmark.
import sys
scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
n = max(10, int(1500 * scale))
print("#include <stddef.h>\nstruct s { int a; long b; double c; char name[16]; };")
for i in range(n):
    print(f"""
static int helper_{i}(const struct s *p, int k) {{
  int acc = {i};
  for (int j = 0; j < k; j++) {{
    switch ((j + {i}) % 5) {{
      case 0: acc += p->a * j; break;
      case 1: acc ^= (int)(p->b >> (j % 13)); break;
      case 2: acc -= (int)(p->c * {i % 17 + 1}); break;
      case 3: acc += p->name[j % 16]; break;
      default: acc = acc * 31 + j;
    }}
  }}
  return acc;
}}
int fn_{i}(struct s *p, int k) {{
  struct s local = *p;
  local.a += helper_{i}(p, k);
  for (int j = 0; j < 16; j++) local.name[j] = (char)(local.a + j * {i % 7});
  return helper_{i}(&local, k + 1) + local.name[{i % 16}];
}}""")
print("int main(void) { struct s x = {1, 2, 3.0, \"abc\"}; int t = 0;")
for i in range(0, n, max(1, n // 50)):
    print(f"  t += fn_{i}(&x, 10);")
print("  return t & 1; }")
