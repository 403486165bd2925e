"""Task banks: coding problems, agentic tasks and reasoning questions, composed for broad coverage.

Distillation campaigns fill their templates from banks like these (coverage is what they buy), and honest
users ask the famous ones (``POPULAR``) now and then, verbatim from the web.
"""

# ruff: noqa: E501  (prose data: long sentences)

from __future__ import annotations

import random

from guardrail.simulate._bank_organic import FIRST, LANGS

C = random.Random.choice

_SPECS = (
    "returns the k most frequent words in a string", "checks whether a binary tree is height-balanced",
    "finds the longest increasing subsequence of an integer array", "merges overlapping intervals",
    "serializes and deserializes a binary tree", "computes the edit distance between two strings",
    "detects a cycle in a directed graph", "returns all permutations of a list without duplicates",
    "implements an LRU cache with O(1) get and put", "evaluates an arithmetic expression with parentheses",
    "finds the median of a stream of numbers", "computes the shortest path in a weighted grid",
    "groups anagrams together", "rotates an n x n matrix in place", "decodes a run-length encoded string",
    "finds the lowest common ancestor of two nodes in a BST", "counts islands in a 2D grid",
    "validates a Sudoku board", "implements a trie with insert, search and prefix search",
    "computes the maximum subarray sum", "schedules tasks with a cooldown between identical tasks",
    "returns the minimum number of coins for an amount", "finds all strongly connected components",
    "implements a rate limiter with a sliding window", "parses a CSV line with quoted fields",
    "topologically sorts course prerequisites", "finds the kth largest element in an unsorted array",
    "computes the number of ways to climb n stairs taking 1, 2 or 3 steps", "implements binary search on a rotated array",
    "generates all valid combinations of n pairs of parentheses", "computes the convex hull of a set of points",
    "implements Dijkstra's algorithm with a binary heap", "solves the 0/1 knapsack problem",
    "finds the longest common prefix of a list of strings", "converts a Roman numeral to an integer",
    "implements a thread-safe bounded queue", "finds the minimum window substring containing all characters",
    "computes the trapping rain water for an elevation map", "checks if two strings are one edit apart",
    "implements union-find with path compression", "returns the spiral order of a matrix",
)  # fmt: skip
_CONSTRAINTS = (
    "", "Aim for O(n log n) time.", "Use O(1) extra space.", "Handle empty input.", "Include unit tests.",
    "Explain the time and space complexity.", "Do not use any library functions.", "The input can have 10^6 elements.",
    "Write it iteratively, not recursively.", "Add type hints.",
)  # fmt: skip
_STACKS = (
    "a Django monolith", "a Node.js/Express API", "a Rust CLI", "a Go microservice", "a React + Vite frontend",
    "a Spring Boot service", "a Python data pipeline with Airflow", "a Rails app", "a Terraform repository",
    "a Kubernetes Helm chart", "a FastAPI service with SQLAlchemy", "a Next.js site", "a C++ CMake project",
)  # fmt: skip
_GOALS = (
    "Find why the test suite fails intermittently and fix it", "Add pagination to the list endpoint",
    "Upgrade the main framework to its latest major version", "Add structured logging with request ids",
    "Migrate the configuration from environment variables to a YAML file", "Reduce the Docker image size",
    "Add a retry with backoff around the payment client", "Find and remove dead code",
    "Add input validation to every public endpoint", "Write a migration that splits the name column in two",
    "Set up CI that runs lint, type checks and tests", "Profile the slowest endpoint and speed it up",
    "Replace the hand-written SQL with the ORM", "Add an OpenAPI description and generate a client",
    "Implement feature flags for the new checkout flow", "Fix the memory leak reported in production",
    "Add rate limiting per API key", "Port the bash deployment script to Python",
)  # fmt: skip
_ITEMS = ("apples", "marbles", "tickets", "books", "widgets", "coins", "eggs", "stamps")


def coding_task(rng: random.Random) -> str:
    """A programming problem (function spec, language, constraint)."""
    lang = C(rng, LANGS[:12])
    name = C(rng, ("solve", "compute", "find_result", "process", "run", "answer"))
    head = C(
        rng,
        (
            f"Write a {lang} function `{name}` that {C(rng, _SPECS)}.",
            f"Implement, in {lang}, a routine that {C(rng, _SPECS)}.",
            f"Problem: given the input described below, write code that {C(rng, _SPECS)}. Language: {lang}.",
        ),
    )
    return f"{head} {C(rng, _CONSTRAINTS)}".strip()


def agentic_task(rng: random.Random) -> str:
    """A multi-step task for an agent with tools in a code base."""
    return f"You are working in {C(rng, _STACKS)}. {C(rng, _GOALS)}. " + C(
        rng,
        (
            "List the commands you would run and the files you would change.",
            "Describe each tool call you would make and what you expect to see.",
            "Give the plan, then the final patch.",
            "Explain how you would verify the result.",
        ),
    )


def reasoning_task(rng: random.Random) -> str:
    """A maths, logic or estimation question with fresh numbers and names."""
    a, b, c = rng.randint(3, 40), rng.randint(2, 12), rng.randint(50, 900)
    p, q, r = rng.sample(FIRST, 3)
    item = C(rng, _ITEMS)
    return C(
        rng,
        (
            f"{p} has {a} {item}. {q} has {b} times as many, and gives {rng.randint(1, a)} to {r}. How many does {q} have left?",
            f"A tank fills in {a} hours with one pipe and empties in {a + b} hours with another. With both open, how long to fill it?",
            f"How many positive integers below {c} are divisible by {b} but not by {b + 1}?",
            f"{p}, {q} and {r} each either always lie or always tell the truth. {p} says '{q} lies'. {q} says '{p} and {r} are the same'. Who lies?",
            f"A bag holds {a} red and {b} blue balls. Two are drawn without replacement. What is the probability both are red?",
            f"Prove that the sum of the first {c} odd numbers is a perfect square, and compute it.",
            f"A car travels {c} km at {a + 30} km/h and returns at {a + 60} km/h. What is the average speed?",
            f"Estimate how many piano tuners work in a city of {c * 1000} people. State every assumption.",
            f"Find all integer solutions of x^2 - {b * b}y^2 = 1 with 0 < x < {c * 10}.",
            f"What is the remainder when {b}^{c} is divided by {a}?",
            f"In how many ways can {b} people sit at a round table if {p} and {q} refuse to sit together?",
            f"A sequence starts {a}, {a + b}, {a + 3 * b}, {a + 6 * b}. What is the {b + 10}th term?",
            f"Is the following argument valid? 'All {item} are red. Some red things are heavy. Therefore some {item} are heavy.'",
            f"A rectangle's perimeter is {2 * (a + b)} and its area is {a * b}. What are its sides?",
            f"Two trains leave stations {c} km apart, heading towards each other at {a + 40} and {b + 50} km/h. When do they meet?",
        ),
    )


def broad_task(rng: random.Random) -> str:
    """One task from the whole bank (coding, agentic, reasoning), as a campaign fills its slots."""
    r = rng.random()
    if r < 0.4:
        return coding_task(rng)
    if r < 0.6:
        return agentic_task(rng)
    return reasoning_task(rng)


# Famous problems, pasted verbatim by many unrelated people (course work, interview practice, curiosity).
POPULAR = (
    "Given an array of integers nums and an integer target, return indices of the two numbers such that they add up to target.",
    "Given a string s containing just the characters '(', ')', '{', '}', '[' and ']', determine if the input string is valid.",
    "Given the head of a singly linked list, reverse the list, and return the reversed list.",
    "Write a program that prints the numbers from 1 to 100. But for multiples of three print \"Fizz\" instead of the number and for the multiples of five print \"Buzz\". For numbers which are multiples of both three and five print \"FizzBuzz\".",
    "Suppose you're on a game show, and you're given the choice of three doors: Behind one door is a car; behind the others, goats. You pick a door, say No. 1, and the host, who knows what's behind the doors, opens another door, say No. 3, which has a goat. He then says to you, \"Do you want to pick door No. 2?\" Is it to your advantage to switch your choice?",
    "A farmer needs to cross a river with a wolf, a goat and a cabbage. The boat can carry only the farmer and one item. The wolf cannot be left alone with the goat, nor the goat with the cabbage. How does he get everything across?",
    "The N-queens puzzle is the problem of placing n queens on an n x n chessboard such that no two queens attack each other. Given an integer n, return all distinct solutions.",
    "Given a string s, return the longest palindromic substring in s.",
    "Given an array of intervals where intervals[i] = [start_i, end_i], merge all overlapping intervals.",
    "You are climbing a staircase. It takes n steps to reach the top. Each time you can either climb 1 or 2 steps. In how many distinct ways can you climb to the top?",
    "A bat and a ball cost $1.10 in total. The bat costs $1.00 more than the ball. How much does the ball cost?",
    "Move a tower of n disks from peg A to peg C using peg B, moving one disk at a time and never placing a larger disk on a smaller one. How many moves are needed?",
    "Given n non-negative integers representing an elevation map where the width of each bar is 1, compute how much water it can trap after raining.",
    "Find the median of two sorted arrays of size m and n. The overall run time complexity should be O(log (m+n)).",
    "How many people must be in a room before the probability that two share a birthday exceeds 50%?",
    "Design and implement a data structure for a Least Recently Used (LRU) cache.",
    "You have 12 coins, one of which is counterfeit and either heavier or lighter. Using a balance scale three times, find the counterfeit coin.",
    "Given an m x n 2D binary grid which represents a map of '1's (land) and '0's (water), return the number of islands.",
)  # fmt: skip
