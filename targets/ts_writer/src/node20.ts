// Promise.withResolvers is ES2024: Node 22 has it, Node 20 (these machines) does not.
// @restatedev/restate-sdk 1.17.2 declares no engines yet calls it on every invocation; on Node 20 each
// attempt ends with "TypeError: Promise.withResolvers is not a function" before the handler runs, and
// the stream is left open, so Restate sees nothing until its abort timeout (10 min). Defined here, only
// when missing, as the specification defines it; this module is imported before the SDK.

type Resolvers<T> = {
  promise: Promise<T>;
  resolve: (value: T | PromiseLike<T>) => void;
  reject: (reason?: unknown) => void;
};

if (typeof (Promise as unknown as { withResolvers?: unknown }).withResolvers !== "function") {
  Object.defineProperty(Promise, "withResolvers", {
    value: function withResolvers<T>(this: PromiseConstructor): Resolvers<T> {
      let resolve!: Resolvers<T>["resolve"];
      let reject!: Resolvers<T>["reject"];
      const promise = new this<T>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
    writable: true,
    configurable: true,
  });
}

export {};
