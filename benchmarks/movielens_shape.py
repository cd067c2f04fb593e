"""Synthetic ratings with the shape of MovieLens ml-32m's filtered sets (issue 16, "Wide").

MixedModels.jl's large-scale anchor fits ``rating ~ 1 + (1 | userId) + (1 | movieId)`` to
ml-32m filtered three ways (EmbraceUncertainty):

    filter                     ratings      users   movies
    movies >= 50, users >= 80  27,083,536   94,380  16,034
    movies >= 5,  users >= 20  31,921,467  200,948  43,884
    all movies,   users >= 20  32,000,204  200,948  84,432

This generator makes data with exactly those counts: every user rates at least the
filter's minimum of distinct movies and every movie gets at least its minimum, the
users' activity heavy tailed (log-normal above the minimum, capped) and the movies'
popularity too (Zipf-like in their rank), ratings 0.5-5 in half steps from user and
movie effects plus noise. Each movie first gets its minimum from users drawn in
proportion to their activity; then every user's remaining ratings are drawn without
replacement in proportion to popularity (the Gumbel top-k trick), skipping the movies
the user has.

    python benchmarks/movielens_shape.py --shape 50-80 --out /tmp/ml-50-80.parquet
    python benchmarks/movielens_shape.py --shape 50-80 --scale 0.1 --stats

``--scale`` shrinks users, movies and ratings alike (for quick runs); ``--stats`` prints
the counts and the work of the Schur update of the movie block (the sum over users of
their ratings squared, halved: the pairs of movies a user links).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

SHAPES = {
    "50-80": {"ratings": 27_083_536, "users": 94_380, "movies": 16_034, "min_user": 80, "min_movie": 50},
    "5-20": {"ratings": 31_921_467, "users": 200_948, "movies": 43_884, "min_user": 20, "min_movie": 5},
    "1-20": {"ratings": 32_000_204, "users": 200_948, "movies": 84_432, "min_user": 20, "min_movie": 1},
}
ACTIVITY_SIGMA = 1.3  # log-normal spread of the users' ratings above the minimum
POPULARITY_EXPONENT = 1.0  # movie of rank r drawn in proportion to (r + 20)^-exponent
MAX_SHARE = 0.6  # the most active user rates at most this share of the movies
EFFECT_SDS = (0.45, 0.5, 0.85)  # users, movies, noise (rating scale)
MEAN = 3.5


def _activity(rng: np.random.Generator, users: int, total: int, low: int, high: int) -> np.ndarray:
    """Ratings per user: ``low`` plus a log-normal excess, capped at ``high``, summing to ``total``."""
    excess = rng.lognormal(0.0, ACTIVITY_SIGMA, users)
    target = total - low * users
    lo_s, hi_s = 0.0, target / excess.mean() * 4
    for _ in range(200):  # the scale whose capped excess sums to the target
        s = 0.5 * (lo_s + hi_s)
        got = np.minimum(np.floor(s * excess), high - low).sum()
        lo_s, hi_s = (s, hi_s) if got < target else (lo_s, s)
    n = low + np.minimum(np.floor(lo_s * excess), high - low).astype(np.int64)
    short = total - int(n.sum())  # whole ratings left by the flooring: one more each to the least capped
    order = np.argsort(-excess)
    room = order[n[order] < high]
    n[room[:short]] += 1
    return n


def generate(shape: str, scale: float = 1.0, seed: int = 16) -> dict[str, np.ndarray]:
    """``user``, ``movie`` (int32 codes, users sorted by nothing in particular) and ``rating``."""
    spec = SHAPES[shape]
    rng = np.random.default_rng(seed)
    users, movies = round(spec["users"] * scale), round(spec["movies"] * scale)
    total = round(spec["ratings"] * scale)
    low_u, low_m = spec["min_user"], spec["min_movie"]
    n_user = _activity(rng, users, total, low_u, int(MAX_SHARE * movies))
    popularity = (np.arange(movies) + 20.0) ** -POPULARITY_EXPONENT
    popularity = popularity[rng.permutation(movies)]  # movie codes in no order of popularity
    log_pop = np.log(popularity)
    # every movie's minimum: users in proportion to their activity, distinct per movie
    chosen: list[list[int]] = [[] for _ in range(users)]
    p_user = n_user / n_user.sum()
    for m in range(movies):
        for u in rng.choice(users, size=low_m, replace=False, p=p_user):
            chosen[u].append(m)
    user_col, movie_col = [], []
    for u in range(users):
        have = np.array(chosen[u], dtype=np.int64)
        k = int(n_user[u]) - have.size
        keys = log_pop - np.log(-np.log(rng.random(movies)))  # Gumbel top-k: weighted, no replacement
        keys[have] = -np.inf
        rest = np.argpartition(-keys, k)[:k] if k > 0 else np.zeros(0, dtype=np.int64)
        ms = np.concatenate([have, rest])
        user_col.append(np.full(ms.size, u, dtype=np.int32))
        movie_col.append(ms.astype(np.int32))
    user = np.concatenate(user_col)
    movie = np.concatenate(movie_col)
    b_u, b_m = rng.normal(0, EFFECT_SDS[0], users), rng.normal(0, EFFECT_SDS[1], movies)
    raw = MEAN + b_u[user] + b_m[movie] + rng.normal(0, EFFECT_SDS[2], user.size)
    rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0).astype(np.float32)
    return {"user": user, "movie": movie, "rating": rating}


def stats(d: dict[str, np.ndarray]) -> dict:
    """The counts, the activity's and popularity's tails, and the Schur update's work."""
    n_u = np.bincount(d["user"]).astype(np.float64)
    n_m = np.bincount(d["movie"]).astype(np.float64)
    return {
        "ratings": int(d["rating"].size),
        "users": int(n_u.size),
        "movies": int(n_m.size),
        "user_ratings_min_median_max": [int(n_u.min()), float(np.median(n_u)), int(n_u.max())],
        "movie_ratings_min_median_max": [int(n_m.min()), float(np.median(n_m)), int(n_m.max())],
        "schur_pairs": float((n_u * (n_u + 1) / 2).sum()),
        "movie_block_gib_dense": n_m.size**2 * 8 / 2**30,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="50-80")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=16)
    ap.add_argument("--out", default=None, help="write the ratings as one Parquet file")
    ap.add_argument("--stats", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = generate(args.shape, args.scale, args.seed)
    took = time.perf_counter() - t0
    if args.out:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table(d), args.out)
    if args.stats or not args.out:
        print(json.dumps({**stats(d), "generate_s": round(took, 1)}, indent=2))


if __name__ == "__main__":
    main()
