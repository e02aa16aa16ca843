import csv,collections,sys
rows=list(csv.DictReader(open(sys.argv[1])))
d=collections.defaultdict(dict)
for r in rows: d[(r['task'],r['method'])][r['image']]=(float(r['psnr']),float(r['ssim']),float(r['wall_s'] or 0))
for t in sorted({k[0] for k in d}):
    dec=d[(t,'decoded')]
    out=[]
    for m in ['decoded','classical','vml-map']:
        v=d[(t,m)]; ks=list(v); n=len(ks)
        p=sum(v[k][0] for k in ks)/n; s=sum(v[k][1] for k in ks)/n
        out.append((m,n,p,s,sum(v[k][0]>dec[k][0] for k in ks),sum(v[k][2] for k in ks)/n))
    (_,n,pd,sd,_,_),(_,_,pc,sc,_,_),(_,_,pv,sv,w,wall)=out
    print(f"| {t.split('-')[1]} | {pd:.2f} / {sd:.3f} | {pc:.2f} / {sc:.3f} | **{pv:.2f} / {sv:.3f}** | {pv-pd:+.2f} | {w}/{n} | {wall:.1f} |")
