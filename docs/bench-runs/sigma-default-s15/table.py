import csv,collections,sys
rows=[]
for f in sys.argv[1:]: rows+=list(csv.DictReader(open(f)))
d=collections.defaultdict(dict)
for r in rows:
    if r['status']!='ok': continue
    d[(r['task'],float(r['sigma_y']))].setdefault(r['method'],{})[r['image']]=float(r['psnr'])
print("| task | true σ_y | photos | told the truth | `auto` | told 0 (no `--sigma-y` before) | auto − truth (worst) |")
print("|---|---|---|---|---|---|---|")
for k in sorted(d):
    ms=d[k]
    need=['vml-map','vml-map/sigma_y=auto','vml-map/sigma_y=0']
    if not all(m in ms for m in need): continue
    common=set.intersection(*[set(ms[m]) for m in need])
    if not common: continue
    mean=lambda m: sum(ms[m][i] for i in common)/len(common)
    diffs=[ms['vml-map/sigma_y=auto'][i]-ms['vml-map'][i] for i in common]
    print(f"| {k[0]} | {k[1]:g} | {len(common)} | {mean('vml-map'):.2f} | {mean('vml-map/sigma_y=auto'):.2f} | {mean('vml-map/sigma_y=0'):.2f} | {sum(diffs)/len(diffs):+.2f} ({min(diffs):+.2f}) |")
