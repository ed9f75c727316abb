"""MovieLens 20M / 25M ratings as an ``IterDataPipe`` of row dicts (optionally joined with movie titles/genres).

Expected layout (as unpacked from grouplens.org)::

    <root>/ratings.csv   userId,movieId,rating,timestamp     (with header)
    <root>/movies.csv    movieId,title,genres                (with header; titles may be quoted)
"""

import functools
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Union

from torch.utils.data import IterDataPipe

from recsys_lib.datasets.utils import LoadFiles, ReadLinesFromCSV, safe_cast

RATINGS_FILENAME = "ratings.csv"
MOVIES_FILENAME = "movies.csv"
DEFAULT_RATINGS_COLUMN_NAMES: List[str] = ["userId", "movieId", "rating", "timestamp"]
DEFAULT_MOVIES_COLUMN_NAMES: List[str] = ["movieId", "title", "genres"]
DEFAULT_COLUMN_NAMES: List[str] = DEFAULT_RATINGS_COLUMN_NAMES + DEFAULT_MOVIES_COLUMN_NAMES[1:]


def _cast_int(val: str) -> int:
    return safe_cast(val, int, 0)


def _cast_float(val: str) -> float:
    return safe_cast(val, float, 0.0)


def _cast_str(val: str) -> str:
    return safe_cast(val, str, "")


# One caster per column of DEFAULT_COLUMN_NAMES.
COLUMN_TYPE_CASTERS: List[Callable[[str], Union[float, int, str]]] = [
    _cast_int,
    _cast_int,
    _cast_float,
    _cast_int,
    _cast_str,
    _cast_str,
]


def _default_row_mapper(example: List[str]) -> Dict[str, Union[float, int, str]]:
    """``["1", "31", "2.5", "1260759144"]`` → ``{"userId": 1, "movieId": 31, "rating": 2.5, "timestamp": ...}``
    (plus ``title``/``genres`` when the movies join added them)."""
    if len(example) > len(DEFAULT_COLUMN_NAMES):
        raise ValueError(f"MovieLens row has {len(example)} fields, at most {len(DEFAULT_COLUMN_NAMES)} expected: {example}")
    return {DEFAULT_COLUMN_NAMES[i]: COLUMN_TYPE_CASTERS[i](v) for i, v in enumerate(example)}


def _join_movie(movies: Dict[str, List[str]], path: str, row: List[str]) -> List[str]:
    movie_id = row[1]
    if movie_id not in movies:
        raise ValueError(f"{path}: ratings row {row} refers to movieId {movie_id}, which is not in {MOVIES_FILENAME}")
    return row + movies[movie_id]


class _Mapped(IterDataPipe):
    def __init__(self, datapipe: IterDataPipe, fn: Callable[[Any], Any]) -> None:
        super().__init__()
        self.datapipe = datapipe
        self.fn = fn

    def __iter__(self) -> Iterator[Any]:
        for item in self.datapipe:
            yield self.fn(item)


class _RatingsWithMovies(IterDataPipe):
    """Ratings rows with ``[title, genres]`` appended; movies.csv is read on each pass (it is small)."""

    def __init__(self, ratings: IterDataPipe, movies_path: str, open_kw: Dict[str, Any]) -> None:
        super().__init__()
        self.ratings = ratings
        self.movies_path = movies_path
        self.open_kw = open_kw

    def __iter__(self) -> Iterator[List[str]]:
        movies: Dict[str, List[str]] = {}
        for row in ReadLinesFromCSV(LoadFiles((self.movies_path,), mode="r", **self.open_kw), skip_first_line=True):
            if len(row) != len(DEFAULT_MOVIES_COLUMN_NAMES):
                raise ValueError(f"{self.movies_path}: row {row} has {len(row)} fields, expected {DEFAULT_MOVIES_COLUMN_NAMES}")
            movies[row[0]] = row[1:]
        join = functools.partial(_join_movie, movies, self.movies_path)
        for row in self.ratings:
            yield join(row)


def _movielens(
    root: str,
    *,
    include_movies_data: bool = False,
    row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
    **open_kw: Any,
) -> IterDataPipe:
    ratings_path = os.path.join(root, RATINGS_FILENAME)
    datapipe: IterDataPipe = ReadLinesFromCSV(LoadFiles((ratings_path,), mode="r", **open_kw), skip_first_line=True)
    if include_movies_data:
        datapipe = _RatingsWithMovies(datapipe, os.path.join(root, MOVIES_FILENAME), open_kw)
    if row_mapper is not None:
        datapipe = _Mapped(datapipe, row_mapper)
    return datapipe


def movielens_20m(
    root: str,
    *,
    include_movies_data: bool = False,
    row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
    **open_kw: Any,
) -> IterDataPipe:
    """MovieLens 20M (``root`` = the unpacked ``ml-20m`` folder).

    Example::

        datapipe = movielens_20m("/data/ml-20m", include_movies_data=True)
        next(iter(datapipe))
        # {"userId": 1, "movieId": 2, "rating": 3.5, "timestamp": 1112486027,
        #  "title": "Jumanji (1995)", "genres": "Adventure|Children|Fantasy"}
    """
    return _movielens(root, include_movies_data=include_movies_data, row_mapper=row_mapper, **open_kw)


def movielens_25m(
    root: str,
    *,
    include_movies_data: bool = False,
    row_mapper: Optional[Callable[[List[str]], Any]] = _default_row_mapper,
    **open_kw: Any,
) -> IterDataPipe:
    """MovieLens 25M (``root`` = the unpacked ``ml-25m`` folder); same row format as ``movielens_20m``."""
    return _movielens(root, include_movies_data=include_movies_data, row_mapper=row_mapper, **open_kw)
