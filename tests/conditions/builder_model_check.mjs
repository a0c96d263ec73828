// Reads {"model": path of model.js, "vocabulary": ..., "cases": [{subject, tree}]}
// on stdin and writes, per case, the tree that the rule builder's model
// gives back after reading it (fromTree, then toTree), or the error raised.
// Run by tests/conditions/test_builder_round_trip.py.

import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const input = JSON.parse(readFileSync(0, "utf8"));
const model = await import(pathToFileURL(input.model).href);

const results = input.cases.map(({ subject, tree }) => {
  const vocabulary = new model.Vocabulary(input.vocabulary, subject);
  try {
    const group = model.fromTree(tree, vocabulary);
    return { tree: model.toTree(group, vocabulary, new Map()) };
  } catch (error) {
    return { error: error.constructor.name, message: error.message };
  }
});
process.stdout.write(JSON.stringify(results));
