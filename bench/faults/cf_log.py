"""Writes a behaviour log big enough that its CF build takes seconds: USERS users, each
with PER_USER interactions over ITEMS items (popular items more likely), seeded; one
`user_id,item_id,active_type,active_date` line each. Usage: cf_log.py USERS PER_USER ITEMS > log.csv
"""
import random, sys

users, per_user, items = (int(a) for a in sys.argv[1:4])
rng = random.Random(7)
out = sys.stdout
out.write("user_id,item_id,active_type,active_date\n")
for u in range(users):
    for k in range(per_user):
        item = int(items * rng.random() ** 2)
        out.write(f"u{u},i{item},{rng.choice('0001')},{1700000000 + u * 100 + k}\n")
