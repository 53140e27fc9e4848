"""A deterministic generator of conference-sized schedules in the project's own YAML format, or as pretalx JSON.

Same (talks, seed) -> byte-identical file, so figures from different runs are comparable; the pretalx
export holds the same events as the YAML file.
Titles have 8-15 words, abstracts 150-250, talks 1-8 authors drawn from a skewed pool so some
authors recur across many talks; a sixth of the names carry accents. Words follow a Zipf law over
a vocabulary that grows with the conference, as real abstracts do.

    python -m bench.generate --talks 10000                    # writes bench/data/talks-10000-s1-v1.yaml
    python -m bench.generate --talks 10000 --format pretalx   # writes bench/data/talks-10000-s1-v1.pretalx.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import json
import random
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

DATA_DIR = Path(__file__).resolve().parent / "data"
TIMEZONE = "America/Vancouver"
FIRST_DAY = dt.date(2024, 12, 10)
DAYS = 5
SLOTS = (dt.time(8, 0), dt.time(10, 0), dt.time(12, 0), dt.time(14, 0), dt.time(16, 0), dt.time(18, 0))
GENERATOR_VERSION = 1

_WORDS = """
learning deep neural network networks model models training optimization gradient descent stochastic
convex nonconvex generalization bound bounds theory analysis robust robustness adversarial attack attacks
defense privacy differential federated distributed graph graphs transformer transformers attention
language vision image images video reinforcement policy agent agents reward exploration bandit bandits
regret online offline causal inference bayesian variational posterior prior sampling monte carlo markov
chain diffusion score generative adversarial autoencoder latent representation representations
contrastive selfsupervised supervised unsupervised semisupervised label labels noisy noise estimation
kernel kernels gaussian process processes sparse low rank matrix tensor factorization completion
spectral clustering embedding embeddings manifold geometry geometric equivariant invariant symmetry
physics dynamics dynamical system systems control continuous discrete time series forecasting
recurrent memory efficient scalable fast approximate approximation algorithm algorithms provable
optimal minimax rates sample complexity statistical learnability pac active meta transfer domain
adaptation shift distribution distributional uncertainty calibration conformal prediction ensemble
ensembles pruning quantization compression distillation knowledge sparse mixture experts scaling
laws emergent benchmark dataset datasets evaluation fairness bias interpretability explanation
explanations feature attribution saliency concept concepts reasoning planning search tree trees
boosting decision forest random hashing retrieval recommendation ranking metric similarity
hyperbolic spherical wasserstein optimal transport entropy information mutual divergence
regularization implicit explicit overparameterized lazy regime neural tangent infinite width
depth residual normalization batch layer convolutional pooling message passing node link
molecule molecular protein drug discovery chemistry materials climate weather healthcare medical
clinical speech audio music text translation summarization question answering dialogue instruction
tuning alignment preference human feedback large pretrained foundation finetuning prompting
incontext chainofthought tokenization vocabulary multilingual multimodal crossmodal grounding
segmentation detection tracking pose depth estimation reconstruction rendering radiance fields
point cloud cloud mesh shape scene robotics manipulation navigation locomotion simulation sim2real
imitation inverse demonstration multiagent game games equilibrium nash auction mechanism market
hierarchical modular compositional program synthesis symbolic neurosymbolic logic theorem proving
mathematical arithmetic combinatorial integer linear programming solver solvers satisfiability
submodular coordinate mirror proximal primal dual accelerated momentum adaptive adam learning-rate
warmup schedule schedules curriculum data augmentation mixup dropout weight decay sharpness flat
minima landscape loss saddle escape convergence stability lipschitz smoothness certified verification
""".split()

_FILLER = """
we propose introduce show study present prove demonstrate develop analyze consider establish
achieve improve outperform extend existing prior methods approaches results experiments benchmarks
across several standard tasks settings our this paper work novel simple new general framework
approach method technique key insight problem challenge setting that which while under when
significantly consistently state-of-the-art competitive performance accuracy cost compute memory
""".split()

_FIRST = """
Aaron Abebe Adèle Aditi Agnieszka Ahmed Aiko Aisha Alejandro Alessandro Alexei Ali Amélie Ana
Anders André Andrés Anja Ankit Antoine Arjun Astrid Aylin Bartosz Beatriz Benoît Björn Carlos
Cecilia Chen Chloé Chiara Claire Daniel Dávid Deepak Diego Dimitris Dominik Elena Élise Emil
Emma Eun-ji Fatima Felipe Fernanda François Gabriel Gaël Giulia Guillermo Hanna Haruto Héctor
Hiroshi Hyun Ibrahim Ines Ingrid Ioana Isabel Ivan Jakub Jan Javier Jérôme Jesús Ji-woo João
Jonas José Julia Jürgen Kai Kamil Karim Katarzyna Kenji Kwame Laila Lars Laura Léa Li Liam
Lucía Luis Łukasz Maja Malik Manuel Marek María Marta Mateo Matthias Mei Mónica Nadia Naoko
Nicolás Nils Noémie Oğuz Olga Omar Pablo Paweł Pedro Petra Piotr Priya Rafael Raúl Renée Ricardo
Rohan Rui Sakura Samuel Sandra Santiago Sara Sebastián Sergio Shreya Simón Siddharth Sofía Søren
Stefan Sun Takumi Tamás Thomas Tomás Valentina Victor Wei Xin Yannick Yara Yasmin Yuki Yusuf
Zoë Zoltán Zuzana
""".split()

_LAST = """
Abadi Adeyemi Agarwal Álvarez Andersson Araújo Bachmann Banerjee Bauer Becker Bengtsson Bernard
Bianchi Borisov Brown Castro Çelik Chatterjee Chen Cho Costa Dąbrowski Dokmanić Dubois Dumont
Eriksson Fernández Ferreira Fischer Fontaine García Gómez González Gupta Hahn Hansen Hernández
Hoffmann Horváth Huang Ibáñez Ivanov Jansen Jiménez Johansson Kaczmarek Kim Kobayashi Kovač
Kowalski Krishnan Kumar Larsen Laurent Lee Lefèvre Lehmann Li Lindqvist Liu López Martín Martínez
Mehta Meier Moreau Müller Nakamura Nguyen Novák Núñez Okafor Olsen Östlund Pérez Petrović Popescu
Rahman Ramírez Rao Reddy Richter Rodríguez Rossi Ruiz Šarić Sato Schäfer Schmidt Schneider
Sharma Silva Singh Sokolov Srinivasan Suzuki Svensson Szabó Takahashi Tanaka Thompson Tran Urbański
Vargas Vasquez Verma Vogel Wagner Wang Watanabe Weber Wiśniewski Wu Xu Yamamoto Yang Yılmaz Zhang
Zhao Zhou Zieliński Øksendal
""".split()

_SYLLABLES = "ka ro mi ne ta lu so vi de pa gri tor lex mor fin sar qua zen bel cor dra pho sy tri ul ven".split()
_LATEX = ["$L_2$", "$k$-means", "$\\ell_1$", "$O(\\sqrt{T})$", "$\\epsilon$-greedy", "$N$-body"]


def _zipf_weights(n: int, exponent: float, shift: int = 0) -> list[float]:
    """Cumulative Zipf-Mandelbrot weights: rank r has weight 1 / (r + shift) ** exponent."""
    return list(itertools.accumulate(1.0 / ((rank + shift) ** exponent) for rank in range(1, n + 1)))


class _Vocabulary:
    """Real field words first (the frequent ones), then a long tail of made-up technical words."""

    def __init__(self, rng: random.Random, talks: int) -> None:
        tail = 3000 + talks // 3
        made: set[str] = set()
        while len(made) < tail:
            made.add("".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))))
        base = list(dict.fromkeys(_WORDS))
        rng.shuffle(base)
        self.words = base + sorted(made)
        # Field words carry three quarters of the mass, the made-up tail the rest.
        head = _zipf_weights(len(base), 1.0, shift=10)
        tail_cum = _zipf_weights(len(made), 1.0, shift=10)
        self.cum = [w * 0.75 / head[-1] for w in head] + [0.75 + w * 0.25 / tail_cum[-1] for w in tail_cum]

    def sample(self, rng: random.Random, k: int) -> list[str]:
        return rng.choices(self.words, cum_weights=self.cum, k=k)


def _author_pool(rng: random.Random, talks: int) -> tuple[list[str], list[float]]:
    """About 2.5 distinct authors per talk, skewed so a few prolific ones have dozens of talks."""
    size = max(50, int(talks * 2.5))
    names: dict[str, None] = {}
    while len(names) < size:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        middle = f" {rng.choice('ABCDEFGHJKLMNPRSTW')}." if rng.random() < 0.35 else ""
        names.setdefault(f"{first}{middle} {last}", None)
    pool = list(names)
    return pool, _zipf_weights(len(pool), 0.8, shift=5)


def _title(rng: random.Random, vocab: _Vocabulary) -> str:
    words = vocab.sample(rng, rng.randint(8, 15))
    if rng.random() < 0.5:
        words.insert(rng.randint(1, len(words) - 1), rng.choice(["for", "with", "via", "of", "in", "and", "under"]))
    if rng.random() < 0.05:
        words[rng.randrange(len(words))] = rng.choice(_LATEX)
    words[0] = words[0].capitalize()
    return " ".join(words[:15])


def _abstract(rng: random.Random, vocab: _Vocabulary) -> str:
    target = rng.randint(150, 250)
    sentences, count = [], 0
    while count < target:
        n = min(rng.randint(12, 28), target - count) or 1
        words = [rng.choice(_FILLER) if rng.random() < 0.3 else w for w in vocab.sample(rng, n)]
        sentences.append(" ".join(words).capitalize() + ".")
        count += n
    return " ".join(sentences)


def _slug(text: str, limit: int) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _session(session_no: int, start: dt.datetime, room: int, talk_numbers: range, rng: random.Random, ctx: dict) -> dict:
    """One session as data: its fields and items, drawn from `rng` in a fixed order (the same file every time)."""
    sid = f"s{session_no:05d}"
    chairs = ctx["authors"](2)
    session = {
        "id": sid,
        "name": "Session " + str(session_no) + ": " + ctx["vocab"].sample(rng, 1)[0].capitalize(),
        "room": f"Room {room + 1}",
        "date": start.date(),
        "chairs": chairs,
        "items": [],
    }
    items = session["items"]
    now = start
    spoken: list[str] = []
    half = len(talk_numbers) // 2
    for i, number in enumerate(talk_numbers):
        if i == half and len(talk_numbers) >= 6:
            now = _item(items, f"{sid}-break", "break", now, 10, "Break")
        kind = "oral" if rng.random() < 0.4 else "spotlight"
        title = _title(rng, ctx["vocab"])
        tid = f"t{number:06d}-{_slug(title, 40)}"
        now = _item(items, tid, kind, now, 12 if kind == "oral" else 5, title)
        items[-1]["authors"] = ctx["authors"](rng.choice((1, 2, 2, 3, 3, 3, 4, 4, 5, 6, 7, 8)))
        items[-1]["abstract"] = _abstract(rng, ctx["vocab"])
        spoken.append(tid)
    now = _item(items, f"{sid}-qa", "qa", now, 8, "Joint Q&A")
    items[-1]["follows"] = spoken[-3:]
    return session


def _item(items: list[dict], item_id: str, kind: str, start: dt.datetime, minutes: int, title: str) -> dt.datetime:
    end = start + dt.timedelta(minutes=minutes)
    items.append({"id": item_id, "kind": kind, "start": start, "end": end, "title": title})
    return end


def _session_lines(session: dict) -> list[str]:
    lines = [
        f"  - id: {session['id']}",
        f"    name: {_q(session['name'])}",
        f"    room: {_q(session['room'])}",
        f"    date: {session['date'].isoformat()}",
        f"    timezone: {TIMEZONE}",
        f"    chairs: [{', '.join(_q(c) for c in session['chairs'])}]",
        "    items:",
    ]
    for item in session["items"]:
        lines += [
            f"      - id: {item['id']}",
            f"        kind: {item['kind']}",
            f"        start: {item['start'].isoformat()}",
            f"        end: {item['end'].isoformat()}",
            f"        title: {_q(item['title'])}",
        ]
        if "authors" in item:
            lines.append("        authors:")
            lines.extend(f"          - {_q(a)}" for a in item["authors"])
            lines.append(f"        abstract: {_q(item['abstract'])}")
        if "follows" in item:
            lines.append(f"        follows: [{', '.join(item['follows'])}]")
    return lines


def _conference(talks: int, seed: int) -> Iterator[dict]:
    """The sessions of a conference with exactly `talks` orals and spotlights (plus Q&As, breaks)."""
    rng = random.Random(seed)
    vocab = _Vocabulary(rng, talks)
    pool, cum = _author_pool(rng, talks)

    def authors(k: int) -> list[str]:
        return list(dict.fromkeys(rng.choices(pool, cum_weights=cum, k=k)))

    ctx = {"vocab": vocab, "authors": authors}
    sizes: list[int] = []
    while sum(sizes) < talks:
        sizes.append(min(rng.randint(4, 8), talks - sum(sizes)))
    rooms = -(-len(sizes) // (DAYS * len(SLOTS)))
    tz = ZoneInfo(TIMEZONE)
    first = 0
    for n, size in enumerate(sizes):
        slot, room = divmod(n, rooms)
        day, slot_no = divmod(slot, len(SLOTS))
        start = dt.datetime.combine(FIRST_DAY + dt.timedelta(days=day), SLOTS[slot_no], tzinfo=tz)
        yield _session(n + 1, start, room, range(first + 1, first + size + 1), rng, ctx)
        first += size


def generate_schedule(talks: int, seed: int = 1) -> str:
    """The YAML text of a conference with exactly `talks` orals and spotlights (plus Q&As, breaks)."""
    out = [
        f"# Generated by bench/generate.py (version {GENERATOR_VERSION}): {talks} talks, seed {seed}.",
        f"conference: {_q(f'Synthetic Conference ({talks} talks)')}",
        "sessions:",
    ]
    for session in _conference(talks, seed):
        out += _session_lines(session)
    return "\n".join(out) + "\n"


_PRETALX_TYPES = {"oral": "Oral", "spotlight": "Spotlight", "break": "Break", "qa": "Q&A"}


def generate_pretalx(talks: int, seed: int = 1) -> str:
    """The same conference as generate_schedule, as a pretalx schedule.json export (days, rooms, events).

    Its types are pretalx's (Oral, Spotlight, Break, Q&A), so the bot reads orals as talks and spotlights
    as lightning talks; the events, times, titles, speakers and abstracts are those of the YAML file.
    """
    days: dict[dt.date, dict[str, list[dict]]] = {}
    rooms: dict[str, None] = {}
    number = 0
    for session in _conference(talks, seed):
        rooms[session["room"]] = None
        events = days.setdefault(session["date"], {}).setdefault(session["room"], [])
        for item in session["items"]:
            number += 1
            events.append(_pretalx_event(number, session, item))
    first, last = min(days), max(days)
    conference = {
        "acronym": f"synthetic-{talks}",
        "title": f"Synthetic Conference ({talks} talks)",
        "start": first.isoformat(),
        "end": last.isoformat(),
        "daysCount": len(days),
        "timeslot_duration": "00:05",
        "time_zone_name": TIMEZONE,
        "rooms": [{"name": name, "guid": None, "description": None, "capacity": None} for name in rooms],
        "days": [_pretalx_day(n, date, day) for n, (date, day) in enumerate(sorted(days.items()), 1)],
    }
    schedule = {"version": f"v{GENERATOR_VERSION}", "base_url": "https://pretalx.example.org/synthetic/schedule/", "conference": conference}
    return json.dumps({"schedule": schedule}, ensure_ascii=False) + "\n"


def _code(name: str) -> str:
    return hashlib.blake2b(name.encode(), digest_size=4).hexdigest().upper()


def _pretalx_day(index: int, date: dt.date, rooms: dict[str, list[dict]]) -> dict:
    tz = ZoneInfo(TIMEZONE)
    start = dt.datetime.combine(date, dt.time(4, 0), tzinfo=tz)
    end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(3, 59), tzinfo=tz)
    return {"index": index, "date": date.isoformat(), "day_start": start.isoformat(), "day_end": end.isoformat(), "rooms": rooms}


def _pretalx_event(number: int, session: dict, item: dict) -> dict:
    minutes = int((item["end"] - item["start"]).total_seconds() // 60)
    return {
        "id": number,
        "guid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"https://pretalx.example.org/synthetic/talk/{item['id']}")),
        "logo": "",
        "date": item["start"].isoformat(),
        "start": item["start"].strftime("%H:%M"),
        "duration": f"{minutes // 60:02d}:{minutes % 60:02d}",
        "room": session["room"],
        "slug": item["id"],
        "url": f"https://pretalx.example.org/synthetic/talk/{item['id']}/",
        "title": item["title"],
        "subtitle": "",
        "track": session["name"],
        "type": _PRETALX_TYPES[item["kind"]],
        "language": "en",
        "abstract": item.get("abstract", ""),
        "description": "",
        "recording_license": "",
        "do_not_record": False,
        "persons": [{"code": _code(name), "public_name": name, "biography": None, "answers": []} for name in item.get("authors", ())],
        "links": [],
        "feedback_url": "",
        "attachments": [],
        "answers": [],
    }


FORMATS = {"yaml": ("yaml", generate_schedule), "pretalx": ("pretalx.json", generate_pretalx)}


def schedule_path(talks: int, seed: int = 1, fmt: str = "yaml") -> Path:
    return DATA_DIR / f"talks-{talks}-s{seed}-v{GENERATOR_VERSION}.{FORMATS[fmt][0]}"


def ensure_schedule(talks: int, seed: int = 1, fmt: str = "yaml") -> Path:
    """The generated file for (talks, seed) in our YAML or as a pretalx export, written on first use."""
    path = schedule_path(talks, seed, fmt)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(FORMATS[fmt][1](talks, seed), encoding="utf-8")
        tmp.replace(path)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--talks", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=sorted(FORMATS), default="yaml")
    parser.add_argument("--out", type=Path, help="write here instead of bench/data/")
    args = parser.parse_args(argv)
    if args.out:
        args.out.write_text(FORMATS[args.format][1](args.talks, args.seed), encoding="utf-8")
        print(args.out)
    else:
        print(ensure_schedule(args.talks, args.seed, args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
