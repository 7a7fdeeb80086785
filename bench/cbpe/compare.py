import json, bisect
import pandas as pd
import nannyml as nml
df = pd.read_csv('models/fraud.holdout.csv')
ref = json.load(open('models/fraud.reference.json'))['score']
t = json.load(open('models/fraud.card.json'))['task']['threshold']
edges, calib = ref['edges'], ref['positive_fractions']
chunk = df.iloc[15000:].copy()
pred = chunk.score >= t
tp = int((pred & (chunk.is_fraud == 1)).sum()); fp = int((pred & (chunk.is_fraud == 0)).sum()); fn = int((~pred & (chunk.is_fraud == 1)).sum())
real_p, real_r = tp / (tp + fp), tp / (tp + fn)
counts = [0] * (len(edges) + 1)
for s in chunk.score:
    counts[bisect.bisect_left(edges, s)] += 1
pos_side = [(edges[i] if i < len(edges) else float('inf')) >= t for i in range(len(counts))]
etp = sum(n * c for n, c, p in zip(counts, calib, pos_side) if p)
epos = sum(n * c for n, c in zip(counts, calib))
epred = sum(n for n, p in zip(counts, pos_side) if p)
est_p, est_r = etp / epred, etp / epos
for d in (df, chunk):
    d['y_pred'] = (d.score >= t).astype(int)
est = nml.CBPE(y_pred_proba='score', y_pred='y_pred', y_true='is_fraud', metrics=['precision', 'recall'],
               problem_type='classification_binary', chunk_number=1)
est.fit(df)
res = est.estimate(chunk.drop(columns=['is_fraud'])).to_df()
nm_p = float(res[('precision', 'value')].iloc[-1]); nm_r = float(res[('recall', 'value')].iloc[-1])
print(f"chunk rows 15000-19999 (n={len(chunk)}, positives={int(chunk.is_fraud.sum())}, predicted positive={int(pred.sum())})")
print(f"precision: estimate {est_p:.4f}  realized {real_p:.4f}  nannyml {nm_p:.4f}")
print(f"recall:    estimate {est_r:.4f}  realized {real_r:.4f}  nannyml {nm_r:.4f}")
